// Berth's own script: asks before a form marked data-confirm is sent (the delete buttons).
// It lives here, not in inline handlers, so that the Content-Security-Policy allows no inline script.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
