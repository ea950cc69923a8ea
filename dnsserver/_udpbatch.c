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

static PyObject *Receiver_recv(Receiver *self, PyObject *arg)
{
    int fd = fd_of(arg);
    if (fd < 0)
        return NULL;
    if (self->buffers == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Receiver is not initialised");
        return NULL;
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
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *list = PyList_New(got);
    if (list == NULL)
        return NULL;
    for (unsigned int i = 0; i < (unsigned int)got; i++) {
        PyObject *data = PyBytes_FromStringAndSize(
            self->buffers + (size_t)i * self->size, self->msgs[i].msg_len);
        PyObject *peer = data != NULL ? peer_of(self, i) : NULL;
        PyObject *pair = peer != NULL ? PyTuple_Pack(2, data, peer) : NULL;
        Py_XDECREF(data);
        Py_XDECREF(peer);
        if (pair == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

static PyMethodDef Receiver_methods[] = {
    {"recv", (PyCFunction)Receiver_recv, METH_O,
     "recv(fd) -> [(data, peer), ...]: every datagram waiting on fd, up to count, blocking "
     "until there is one (recvmmsg with MSG_WAITFORONE)."},
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

static PyObject *send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send(fd, [(data, peer), ...])");
        return NULL;
    }
    int fd = fd_of(args[0]);
    if (fd < 0)
        return NULL;
    PyObject *list = args[1];
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
                return NULL;
            }
            PyObject *data = PyTuple_GET_ITEM(pair, 0), *peer = PyTuple_GET_ITEM(pair, 1);
            const char *name = PyBytes_AS_STRING(peer);
            Py_ssize_t length = PyBytes_GET_SIZE(peer);
            int level = 0, type = 0;
            socklen_t namelen = split_peer(name, length, &level, &type);
            if (namelen == 0) {
                PyErr_SetString(PyExc_ValueError, "a peer must be a sockaddr_in or sockaddr_in6");
                return NULL;
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
                    return NULL;
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
                return PyErr_SetFromErrno(PyExc_OSError);  /* the socket is closed */
            } else {
                done += 1;  /* the first unsent one failed (as a failed sendto): skip it */
                failed += 1;
            }
        }
    }
    return PyLong_FromSsize_t(failed);
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

static PyMethodDef methods[] = {
    {"send", (PyCFunction)(void (*)(void))send_batch, METH_FASTCALL,
     "send(fd, [(data, peer), ...]) -> int: send every datagram (sendmmsg); one that fails is "
     "skipped and counted in the result. OSError only when fd is closed."},
    {"host", host, METH_O, "host(peer) -> str: the peer's IP address as text."},
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
