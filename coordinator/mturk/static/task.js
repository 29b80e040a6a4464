// Fetch the item with the page's token; store the label with us, then submit the HIT to MTurk.
(function () {
  "use strict";
  var work = document.getElementById("work");
  var form = document.getElementById("label-form");
  var problem = document.getElementById("form-error");
  var failed = document.currentScript.getAttribute("data-failed");
  var token = work.getAttribute("data-token");

  function show(message) { problem.textContent = message; problem.hidden = false; }

  function render(payload) {
    var box = document.getElementById("item");
    box.textContent = "";
    var text = payload.text !== undefined ? payload.text : JSON.stringify(payload);
    box.appendChild(document.createTextNode(String(text)));
  }

  fetch("item?token=" + encodeURIComponent(token), {credentials: "omit"})
    .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
    .then(function (answer) {
      if (!answer.ok) { show(answer.body.detail || failed); return; }
      render(answer.body.payload);
    })
    .catch(function () { show(failed); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = form.querySelector("input[name=label]:checked");
    if (!chosen) { return; }
    var button = document.getElementById("send");
    button.disabled = true;
    fetch("labels", {
      method: "POST", credentials: "omit", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token: token, assignment_id: work.getAttribute("data-assignment"),
                            label: chosen.value, locale: work.getAttribute("data-locale")})
    }).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, body: body}; });
    }).then(function (answer) {
      if (!answer.ok) { button.disabled = false; show(answer.body.detail || failed); return; }
      HTMLFormElement.prototype.submit.call(form);  // to turkSubmitTo/mturk/externalSubmit, our label already stored
    }).catch(function () { button.disabled = false; show(failed); });
  });
})();
