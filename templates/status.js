// dockzone status page: live updates and search as you type. The page works without it.
(function () {
  "use strict";
  var INTERVAL = 2000;
  var SECTIONS = ["meta", "zones", "problems", "sources", "passes", "names"];
  var passes = document.body.getAttribute("data-passes");
  var busy = false;

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    SECTIONS.forEach(function (id) {
      var old = document.getElementById(id);
      var now = fresh.getElementById(id);
      if (old && now) {
        old.replaceWith(now);
      }
    });
    passes = fresh.body.getAttribute("data-passes");
    document.body.setAttribute("data-passes", passes);
  }

  function refresh(url) {
    busy = true;
    return fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.text().then(swap) : null;
      })
      .finally(function () { busy = false; });
  }

  function poll() {
    if (busy) {
      setTimeout(poll, INTERVAL);
      return;
    }
    fetch("/ui/poll", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && String(body.passes) !== passes) {
          return refresh(location.href);
        }
        return null;
      })
      .catch(function () { /* the daemon is restarting: try again next time */ })
      .finally(function () { setTimeout(poll, INTERVAL); });
  }

  var search = document.querySelector("#search input[name=q]");
  var timer = null;
  if (search) {
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = search.value.trim();
        var url = q ? "/?q=" + encodeURIComponent(q) : "/";
        history.replaceState(null, "", url);
        refresh(url);
      }, 250);
    });
  }
  setTimeout(poll, INTERVAL);
})();
