/* dnsserver._udpbatch: UDP datagrams in batches, recvmmsg(2) and sendmmsg(2) (Linux).
 *
 * The UDP loop in dnsserver/server.py costs a few microseconds of Python per answer; the
 * rest is two system calls per datagram (recvfrom, sendto) and the wake-ups between them.
 * Python's socket module has no recvmmsg/sendmmsg, and through ctypes the per-datagram
 * conversions cost more than the calls they save (measured: see docs/dns-server.md). This
 * module does only the I/O: it reads every datagram waiting (up to `count`) in one call
 * and sends a list of answers in one call. Everything DNS stays in Python.
 *
 * A peer is the sender's socket address as bytes (struct sockaddr_in or sockaddr_in6 as
 * the kernel filled it in). On a socket bound to a wildcard address, the receiver is made
 * with pktinfo=1 and a peer carries the packet's destination after the socket address
 * (in_pktinfo or in6_pktinfo, RFC 3542), which `send` hands back so that the answer leaves
 * from the address the query was sent to; dnsserver/udpio.py explains why.
 *
 * Optional: setup.py builds it with optional=True, and dnsserver/udpio.py falls back to
 * one recvfrom/sendto per datagram where it is missing (no compiler, not Linux).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

/* A file descriptor from a Python int (PyLong_AsInt is new in 3.13). */
static int fd_of(PyObject *arg)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < 0 || value > INT_MAX) {
        PyErr_SetString(PyExc_OSError, "not an open socket");
        return -1;
    }
    return (int)value;
}

/* Room for one IP_PKTINFO or IPV6_PKTINFO control message. */
#define CONTROL_SIZE 64
/* Messages per sendmmsg call; a longer list takes several calls. */
#define SEND_MAX 64

typedef struct {
    PyObject_HEAD
    unsigned int count;
    size_t size;
    int pktinfo;
    char *buffers;
    char *controls;
    struct mmsghdr *msgs;
    struct iovec *iovs;
    struct sockaddr_storage *names;
} Receiver;

static void Receiver_dealloc(Receiver *self)
{
    PyMem_RawFree(self->buffers);
    PyMem_RawFree(self->controls);
    PyMem_RawFree(self->msgs);
    PyMem_RawFree(self->iovs);
    PyMem_RawFree(self->names);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Receiver_init(Receiver *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"count", "size", "pktinfo", NULL};
    unsigned int count = 32;
    Py_ssize_t size = 65535;
    int pktinfo = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Inp", kwlist, &count, &size, &pktinfo))
        return -1;
    if (count < 1 || count > 1024) {
        PyErr_Format(PyExc_ValueError, "count must be 1 to 1024, not %u", count);
        return -1;
    }
    if (size < 512 || size > 65535) {
        PyErr_Format(PyExc_ValueError, "size must be 512 to 65535, not %zd", size);
        return -1;
    }
    if (self->buffers != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Receiver is already initialised");
        return -1;
    }
    self->count = count;
    self->size = (size_t)size;
    self->pktinfo = pktinfo;
    self->buffers = PyMem_RawMalloc((size_t)count * self->size);
    self->controls = PyMem_RawCalloc(count, CONTROL_SIZE);
    self->msgs = PyMem_RawCalloc(count, sizeof(struct mmsghdr));
    self->iovs = PyMem_RawCalloc(count, sizeof(struct iovec));
    self->names = PyMem_RawCalloc(count, sizeof(struct sockaddr_storage));
    if (!self->buffers || !self->controls || !self->msgs || !self->iovs || !self->names) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The peer of message i: its socket address, and with pktinfo the destination the answer
 * must leave from (for IPv4 as in_pktinfo with ipi_spec_dst set, as sendmsg wants it). */
static PyObject *peer_of(Receiver *self, unsigned int i)
{
    struct msghdr *hdr = &self->msgs[i].msg_hdr;
    socklen_t namelen = hdr->msg_namelen;
    if (namelen > sizeof(struct sockaddr_storage))
        namelen = sizeof(struct sockaddr_storage);
    if (!self->pktinfo)
        return PyBytes_FromStringAndSize((const char *)&self->names[i], namelen);
    char peer[sizeof(struct sockaddr_storage) + sizeof(struct in6_pktinfo)];
    size_t length = namelen;
    memcpy(peer, &self->names[i], namelen);
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(hdr); cmsg != NULL; cmsg = CMSG_NXTHDR(hdr, cmsg)) {
        if (cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo got, reply;
            memcpy(&got, CMSG_DATA(cmsg), sizeof(got));
            memset(&reply, 0, sizeof(reply));
            reply.ipi_spec_dst = got.ipi_addr;
            memcpy(peer + length, &reply, sizeof(reply));
            length += sizeof(reply);
            break;
        }
        if (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_PKTINFO) {
            memcpy(peer + length, CMSG_DATA(cmsg), sizeof(struct in6_pktinfo));
            length += sizeof(struct in6_pktinfo);
            break;
        }
    }
    return PyBytes_FromStringAndSize(peer, (Py_ssize_t)length);
}

static Py_ssize_t send_pairs(int fd, PyObject *list);

/* recvmmsg into the receiver's buffers: how many datagrams, or -1 with an exception. */
static int receive(Receiver *self, int fd)
{
    if (self->buffers == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Receiver is not initialised");
        return -1;
    }
    for (unsigned int i = 0; i < self->count; i++) {
        struct msghdr *hdr = &self->msgs[i].msg_hdr;
        self->iovs[i].iov_base = self->buffers + (size_t)i * self->size;
        self->iovs[i].iov_len = self->size;
        hdr->msg_iov = &self->iovs[i];
        hdr->msg_iovlen = 1;
        hdr->msg_name = &self->names[i];
        hdr->msg_namelen = sizeof(struct sockaddr_storage);
        hdr->msg_control = self->pktinfo ? self->controls + (size_t)i * CONTROL_SIZE : NULL;
        hdr->msg_controllen = self->pktinfo ? CONTROL_SIZE : 0;
        hdr->msg_flags = 0;
    }
    int got;
    do {
        Py_BEGIN_ALLOW_THREADS
        got = recvmmsg(fd, self->msgs, self->count, MSG_WAITFORONE, NULL);
        Py_END_ALLOW_THREADS
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        PyErr_SetFromErrno(PyExc_OSError);
    return got;
}

/* (data, peer) of datagram i: a new reference, or NULL with an exception. */
static PyObject *pair_of(Receiver *self, unsigned int i)
{
    PyObject *data = PyBytes_FromStringAndSize(
        self->buffers + (size_t)i * self->size, self->msgs[i].msg_len);
    PyObject *peer = data != NULL ? peer_of(self, i) : NULL;
    PyObject *pair = peer != NULL ? PyTuple_Pack(2, data, peer) : NULL;
    Py_XDECREF(data);
    Py_XDECREF(peer);
    return pair;
}

static PyObject *Receiver_recv(Receiver *self, PyObject *arg)
{
    int fd = fd_of(arg);
    if (fd < 0)
        return NULL;
    int got = receive(self, fd);
    if (got < 0)
        return NULL;
    PyObject *list = PyList_New(got);
    if (list == NULL)
        return NULL;
    for (unsigned int i = 0; i < (unsigned int)got; i++) {
        PyObject *pair = pair_of(self, i);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

/* The sender's IP address of datagram i (4 or 16 bytes), or 0 bytes for another family. */
static size_t address_of(const struct sockaddr_storage *name, const char **start)
{
    if (name->ss_family == AF_INET) {
        *start = (const char *)&((const struct sockaddr_in *)name)->sin_addr;
        return 4;
    }
    if (name->ss_family == AF_INET6) {
        *start = (const char *)&((const struct sockaddr_in6 *)name)->sin6_addr;
        return 16;
    }
    return 0;
}

/* The answer to datagram i from the answer cache, or NULL: a new reference to the
 * response bytes (the query's id and the kept answer), NULL with no exception for a miss. */
static PyObject *cached(Receiver *self, unsigned int i, PyObject *cache, PyObject *negatives,
                        PyObject *outcomes, PyObject *prefixes)
{
    const char *data = self->buffers + (size_t)i * self->size;
    size_t length = self->msgs[i].msg_len;
    if (length < 12 || (data[2] & 0x80))
        return NULL;  /* no header, a response: the loop drops it */
    const char *address;
    size_t size = address_of(&self->names[i], &address);
    if (size == 0)
        return NULL;
    PyObject *client = PyBytes_FromStringAndSize(address, (Py_ssize_t)size);
    if (client == NULL)
        return NULL;
    PyObject *prefix = PyDict_GetItemWithError(prefixes, client);  /* borrowed */
    Py_DECREF(client);
    if (prefix == NULL || !PyBytes_Check(prefix))
        return NULL;  /* a client the loop has not seen, or one it must rate-limit */
    Py_ssize_t head = PyBytes_GET_SIZE(prefix);
    PyObject *key = PyBytes_FromStringAndSize(NULL, head + (Py_ssize_t)length - 2);
    if (key == NULL)
        return NULL;
    memcpy(PyBytes_AS_STRING(key), PyBytes_AS_STRING(prefix), (size_t)head);
    memcpy(PyBytes_AS_STRING(key) + head, data + 2, length - 2);
    PyObject *hit = PyDict_GetItemWithError(cache, key);  /* borrowed */
    if (hit == NULL && !PyErr_Occurred())
        hit = PyDict_GetItemWithError(negatives, key);
    Py_DECREF(key);
    if (hit == NULL || !PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 2)
        return NULL;
    Py_ssize_t number = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 1));
    if (number < 0 || number >= PyList_GET_SIZE(outcomes))
        return NULL;  /* (with an exception when it was no int) */
    PyObject *wire = PyIter_Next(PyTuple_GET_ITEM(hit, 0));
    if (wire == NULL)
        return NULL;
    Py_ssize_t before = PyLong_AsSsize_t(PyList_GET_ITEM(outcomes, number));
    PyObject *count = before >= 0 ? PyLong_FromSsize_t(before + 1) : NULL;
    if (count == NULL || !PyBytes_Check(wire)) {
        Py_XDECREF(count);
        Py_DECREF(wire);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a cached answer must be bytes");
        return NULL;
    }
    PyList_SetItem(outcomes, number, count);  /* steals count */
    Py_ssize_t size_wire = PyBytes_GET_SIZE(wire);
    PyObject *answer = PyBytes_FromStringAndSize(NULL, size_wire + 2);
    if (answer != NULL) {
        memcpy(PyBytes_AS_STRING(answer), data, 2);  /* the query's id */
        memcpy(PyBytes_AS_STRING(answer) + 2, PyBytes_AS_STRING(wire), (size_t)size_wire);
    }
    Py_DECREF(wire);
    return answer;
}

/* serve(fd, fresh, cache, negatives, outcomes, prefixes): recv, answering from the cache
 * here what the UDP loop would answer from it (see dnsserver/udpio.py); returns the rest. */
static PyObject *Receiver_serve(Receiver *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyDict_Check(args[2]) || !PyDict_Check(args[3])
        || !PyList_Check(args[4]) || !PyDict_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "serve(fd, fresh, cache: dict, negatives: dict, outcomes: list, "
                        "prefixes: dict)");
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0)
        return NULL;
    int got = receive(self, fd);
    if (got < 0)
        return NULL;
    PyObject *fresh = PyObject_CallNoArgs(args[1]);
    if (fresh == NULL)
        return NULL;
    int fast = PyObject_IsTrue(fresh);
    Py_DECREF(fresh);
    if (fast < 0)
        return NULL;
    PyObject *rest = PyList_New(0);
    PyObject *answered = PyList_New(0);
    if (rest == NULL || answered == NULL)
        goto fail;
    for (unsigned int i = 0; i < (unsigned int)got; i++) {
        PyObject *answer = fast ? cached(self, i, args[2], args[3], args[4], args[5]) : NULL;
        if (answer == NULL && PyErr_Occurred())
            PyErr_Clear();  /* not what the loop keeps: its own path answers (or logs) */
        PyObject *pair;
        if (answer != NULL) {
            PyObject *peer = peer_of(self, i);
            pair = peer != NULL ? PyTuple_Pack(2, answer, peer) : NULL;
            Py_DECREF(answer);
            Py_XDECREF(peer);
        } else {
            pair = pair_of(self, i);
        }
        if (pair == NULL || PyList_Append(answer != NULL ? answered : rest, pair) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
    }
    if (PyList_GET_SIZE(answered) > 0 && send_pairs(fd, answered) < 0)
        PyErr_Clear();  /* closed: the loop finds out on its next call */
    Py_DECREF(answered);
    return rest;
fail:
    Py_XDECREF(rest);
    Py_XDECREF(answered);
    return NULL;
}

static PyMethodDef Receiver_methods[] = {
    {"recv", (PyCFunction)Receiver_recv, METH_O,
     "recv(fd) -> [(data, peer), ...]: every datagram waiting on fd, up to count, blocking "
     "until there is one (recvmmsg with MSG_WAITFORONE)."},
    {"serve", (PyCFunction)(void (*)(void))Receiver_serve, METH_FASTCALL,
     "serve(fd, fresh, cache, negatives, outcomes, prefixes) -> [(data, peer), ...]: recv, "
     "with the queries the answer cache answers sent here (see dnsserver/udpio.py)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dnsserver._udpbatch.Receiver",
    .tp_doc = "Receiver(count=32, size=65535, pktinfo=False): buffers for recvmmsg.",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Receiver_init,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_methods = Receiver_methods,
};

/* Split a peer into its socket address and the pktinfo after it (length 0 if none).
 * Returns the socket address length, or 0 for a peer this module did not make. */
static socklen_t split_peer(const char *peer, Py_ssize_t length, int *level, int *type)
{
    sa_family_t family;
    if (length < (Py_ssize_t)sizeof(family))
        return 0;
    memcpy(&family, peer, sizeof(family));
    if (family == AF_INET && length >= (Py_ssize_t)sizeof(struct sockaddr_in)) {
        *level = IPPROTO_IP;
        *type = IP_PKTINFO;
        return sizeof(struct sockaddr_in);
    }
    if (family == AF_INET6 && length >= (Py_ssize_t)sizeof(struct sockaddr_in6)) {
        *level = IPPROTO_IPV6;
        *type = IPV6_PKTINFO;
        return sizeof(struct sockaddr_in6);
    }
    return 0;
}

/* Send every (data, peer) of list; returns how many failed, or -1 with an exception
 * (a malformed pair, the socket closed). */
static Py_ssize_t send_pairs(int fd, PyObject *list)
{
    Py_ssize_t total = PyList_GET_SIZE(list);
    struct mmsghdr msgs[SEND_MAX];
    struct iovec iovs[SEND_MAX];
    char controls[SEND_MAX][CONTROL_SIZE];
    Py_ssize_t failed = 0;
    for (Py_ssize_t start = 0; start < total; start += SEND_MAX) {
        Py_ssize_t count = total - start < SEND_MAX ? total - start : SEND_MAX;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *pair = PyList_GET_ITEM(list, start + i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0))
                || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
                PyErr_SetString(PyExc_TypeError, "send wants a list of (data, peer) bytes pairs");
                return -1;
            }
            PyObject *data = PyTuple_GET_ITEM(pair, 0), *peer = PyTuple_GET_ITEM(pair, 1);
            const char *name = PyBytes_AS_STRING(peer);
            Py_ssize_t length = PyBytes_GET_SIZE(peer);
            int level = 0, type = 0;
            socklen_t namelen = split_peer(name, length, &level, &type);
            if (namelen == 0) {
                PyErr_SetString(PyExc_ValueError, "a peer must be a sockaddr_in or sockaddr_in6");
                return -1;
            }
            struct msghdr *hdr = &msgs[i].msg_hdr;
            memset(&msgs[i], 0, sizeof(msgs[i]));
            iovs[i].iov_base = PyBytes_AS_STRING(data);
            iovs[i].iov_len = (size_t)PyBytes_GET_SIZE(data);
            hdr->msg_iov = &iovs[i];
            hdr->msg_iovlen = 1;
            hdr->msg_name = (void *)name;
            hdr->msg_namelen = namelen;
            size_t extra = (size_t)(length - namelen);
            if (extra > 0) {
                if (CMSG_SPACE(extra) > CONTROL_SIZE) {
                    PyErr_SetString(PyExc_ValueError, "a peer's pktinfo is too long");
                    return -1;
                }
                memset(controls[i], 0, CONTROL_SIZE);
                hdr->msg_control = controls[i];
                hdr->msg_controllen = CMSG_SPACE(extra);
                struct cmsghdr *cmsg = CMSG_FIRSTHDR(hdr);
                cmsg->cmsg_level = level;
                cmsg->cmsg_type = type;
                cmsg->cmsg_len = CMSG_LEN(extra);
                memcpy(CMSG_DATA(cmsg), name + namelen, extra);
            }
        }
        Py_ssize_t done = 0;
        while (done < count) {
            int sent;
            Py_BEGIN_ALLOW_THREADS
            sent = sendmmsg(fd, msgs + done, (unsigned int)(count - done), 0);
            Py_END_ALLOW_THREADS
            if (sent > 0) {
                done += sent;
            } else if (sent < 0 && errno == EINTR) {
                continue;
            } else if (sent < 0 && errno == EBADF) {
                PyErr_SetFromErrno(PyExc_OSError);  /* the socket is closed */
                return -1;
            } else {
                done += 1;  /* the first unsent one failed (as a failed sendto): skip it */
                failed += 1;
            }
        }
    }
    return failed;
}

static PyObject *send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send(fd, [(data, peer), ...])");
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0)
        return NULL;
    Py_ssize_t failed = send_pairs(fd, args[1]);
    return failed < 0 ? NULL : PyLong_FromSsize_t(failed);
}

/* The sender's address as text, as Python's socket module gives it (without an IPv6
 * scope): what the rate limiter, cookies and network-aware answers are keyed by. */
static PyObject *host(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "host(peer): peer must be bytes");
        return NULL;
    }
    const char *peer = PyBytes_AS_STRING(arg);
    int level, type;
    socklen_t namelen = split_peer(peer, PyBytes_GET_SIZE(arg), &level, &type);
    char text[INET6_ADDRSTRLEN];
    const char *made = NULL;
    if (namelen == sizeof(struct sockaddr_in)) {
        struct sockaddr_in sin;
        memcpy(&sin, peer, sizeof(sin));
        made = inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text));
    } else if (namelen == sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, peer, sizeof(sin6));
        made = inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text));
    }
    if (made == NULL) {
        PyErr_SetString(PyExc_ValueError, "a peer must be a sockaddr_in or sockaddr_in6");
        return NULL;
    }
    return PyUnicode_FromString(text);
}

/* The peer for (host, port): what `send` takes, for an address Python has as text. */
static PyObject *peer(PyObject *module, PyObject *args)
{
    const char *text;
    int port;
    if (!PyArg_ParseTuple(args, "si:peer", &text, &port))
        return NULL;
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port must be 0 to 65535, not %d", port);
        return NULL;
    }
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        return PyBytes_FromStringAndSize((const char *)&sin, sizeof(sin));
    }
    if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)port);
        return PyBytes_FromStringAndSize((const char *)&sin6, sizeof(sin6));
    }
    PyErr_Format(PyExc_ValueError, "not an IP address: %s", text);
    return NULL;
}

/* The peer's IP address as bytes (4 or 16): the key of serve's `prefixes`. */
static PyObject *address(PyObject *module, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "address(peer): peer must be bytes");
        return NULL;
    }
    struct sockaddr_storage name;
    memset(&name, 0, sizeof(name));
    Py_ssize_t length = PyBytes_GET_SIZE(arg);
    memcpy(&name, PyBytes_AS_STRING(arg), length < (Py_ssize_t)sizeof(name) ? (size_t)length : sizeof(name));
    const char *start = "";
    size_t size = address_of(&name, &start);  /* 0: another family (a shutdown's wake-up) */
    return PyBytes_FromStringAndSize(start, (Py_ssize_t)size);
}

static PyMethodDef methods[] = {
    {"send", (PyCFunction)(void (*)(void))send_batch, METH_FASTCALL,
     "send(fd, [(data, peer), ...]) -> int: send every datagram (sendmmsg); one that fails is "
     "skipped and counted in the result. OSError only when fd is closed."},
    {"host", host, METH_O, "host(peer) -> str: the peer's IP address as text."},
    {"address", address, METH_O,
     "address(peer) -> bytes: the peer's IP address (4 or 16 bytes; empty for another family)."},
    {"peer", peer, METH_VARARGS, "peer(host, port) -> bytes: the socket address of host:port."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "dnsserver._udpbatch",
    .m_doc = "UDP datagrams in batches (recvmmsg, sendmmsg); see dnsserver/udpio.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__udpbatch(void)
{
    if (PyType_Ready(&ReceiverType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&moduledef);
    if (module == NULL)
        return NULL;
    Py_INCREF(&ReceiverType);
    if (PyModule_AddObject(module, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(&ReceiverType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
