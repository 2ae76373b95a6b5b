// Times are rendered in UTC by the server; show them in the viewer's timezone
// (the UTC time stays in the title, shown on hover).
(function () {
  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.local) return;
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = d.toLocaleString();
      el.dataset.local = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  document.addEventListener("htmx:afterSettle", function (e) { localize(document); });
})();
