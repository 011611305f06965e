// Live pages (and a graph scrolled to its current state): every element with data-live="topic[ topic…]" names what it shows. One EventSource per
// page listens on /ui/live for those topics; when one changes, the page is read again (with the
// viewer's own cookie and rights) and its <main> swapped in, unless someone is typing in a form.
(function () {
  "use strict";
  // A wide process graph scrolls inside its card: bring the current state into view.
  function showCurrent() {
    var card = document.querySelector("[data-dag]");
    var current = card && card.querySelector("g[data-kind=current]");
    if (card && current && card.scrollWidth > card.clientWidth) {
      var box = current.getBoundingClientRect(), frame = card.getBoundingClientRect();
      card.scrollLeft += box.left - frame.left - (frame.width - box.width) / 2;
    }
  }
  showCurrent();
  window.addEventListener("resize", showCurrent);

  var topics = [];
  document.querySelectorAll("[data-live]").forEach(function (el) {
    el.getAttribute("data-live").split(" ").forEach(function (t) {
      if (t && topics.indexOf(t) < 0) { topics.push(t); }
    });
  });
  if (!topics.length || !window.EventSource) { return; }
  var pending = false, busy = false;

  function typing() {
    var el = document.activeElement;
    return el && el.closest("main") && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) && el.type !== "submit";
  }

  function refresh() {
    if (busy) { pending = true; return; }
    if (typing()) { pending = true; setTimeout(refresh, 1000); return; }
    busy = true; pending = false;
    fetch(window.location.href, { credentials: "same-origin", headers: { "x-live-refresh": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
        var main = document.querySelector("main");
        if (fresh && main) {
          // A selection (the queue's checkboxes) survives the swap.
          var checked = Array.prototype.map.call(
            main.querySelectorAll("input[type=checkbox]:checked"),
            function (box) { return box.name + "=" + box.value; });
          fresh.querySelectorAll(".flash").forEach(function (f) { f.remove(); });
          main.innerHTML = fresh.innerHTML;
          main.querySelectorAll("input[type=checkbox]").forEach(function (box) {
            if (checked.indexOf(box.name + "=" + box.value) >= 0) { box.checked = true; }
          });
          document.body.setAttribute("data-refreshed", String(Date.now()));
          showCurrent();
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (pending) { setTimeout(refresh, 300); } });
  }

  // A burst of changes is one read, and a page reads itself at most once a second however busy the
  // system is (each read is a request of the viewer's, under the viewer's rate limit).
  var timer = null, last = 0;
  var source = new EventSource("/ui/live?topics=" + encodeURIComponent(topics.join(",")));
  source.addEventListener("change", function () {
    if (timer !== null) { return; }
    var wait = Math.max(250, 1000 - (Date.now() - last));
    timer = setTimeout(function () { timer = null; last = Date.now(); refresh(); }, wait);
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
