// What HTML and htmx alone cannot do on the desk: clocks, the link banner, ringing (sound, title,
// notification, focus), announcements for screen readers, keeping what the agent typed when a
// card is re-rendered, the pending state until the push arrives, toasts, keypads and shortcuts.
// The server stays the truth: nothing here changes a card's state, only how it is presented.
(function () {
  "use strict";

  var desk = document.querySelector(".desk");
  if (!desk) { return; }  // the login and history pages need none of this

  var banner = document.getElementById("link-banner");
  var announcer = document.getElementById("announcer");
  var shortcutsDialog = document.getElementById("shortcuts");
  var baseTitle = document.title;
  var PENDING_MS = 6000;         // a push normally arrives well within this
  var TOAST_MS = 8000;
  var RELEVANCE = ["Ringing", "Established", "Dialing", "Held"];

  function $$(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function isEditable(el) { return !!(el && el.closest && el.closest("input, textarea, select, [contenteditable]")); }
  function focusLost() { var a = document.activeElement; return !a || a === document.body || !document.contains(a); }
  function cards() { return $$("#calls .call-card"); }
  function byRelevance() {
    return cards().map(function (card, i) { return [card, i]; }).sort(function (a, b) {
      var ra = RELEVANCE.indexOf(a[0].dataset.state), rb = RELEVANCE.indexOf(b[0].dataset.state);
      return ((ra < 0 ? 9 : ra) - (rb < 0 ? 9 : rb)) || a[1] - b[1];
    }).map(function (pair) { return pair[0]; });
  }

  // -- clocks ---------------------------------------------------------------------------------
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return (h ? h + ":" + (m < 10 ? "0" : "") + m : m) + ":" + (s < 10 ? "0" : "") + s;
  }
  function tick() {
    var now = Date.now() / 1000;
    cards().forEach(function (card) {
      var out = card.querySelector("[data-duration]");
      if (out && card.dataset.started) { out.textContent = clock(now - Number(card.dataset.started)); }
    });
    var state = document.getElementById("agent-state");
    var timer = state && state.querySelector("[data-state-timer]");
    if (timer && state.dataset.since) { timer.textContent = clock(now - Number(state.dataset.since)); }
  }
  setInterval(tick, 1000);

  // -- the link: browser to desk (WebSocket) and desk to Voice API (#connection) -----------------
  var socketUp = null, closeCode = 0, retries = 0, leaving = false;
  function linkProblem() {
    var indicator = document.getElementById("connection");
    var status = indicator ? indicator.dataset.status : "connected";
    if (socketUp === false && closeCode >= 4000) {
      return ["offline", "Your desk session has ended. Reload the page to log in again."];
    }
    if (socketUp === false) {
      return ["offline", "The connection to the desk is lost. Reconnecting… Call and agent controls are off until it is back."];
    }
    if (status === "reconnecting") {
      return ["reconnecting", "Reconnecting to the Voice API… Call and agent controls are off until it is back."];
    }
    if (status === "offline") {
      return ["offline", "The Voice API cannot be reached. Call and agent controls are off until it is back."];
    }
    return null;
  }
  function applyLink() {
    var problem = linkProblem();
    desk.dataset.link = problem ? "down" : "up";
    ["calls", "agent-state", "dial"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.inert = !!problem; }
    });
    if (!banner) { return; }
    banner.hidden = !problem;
    if (problem) {
      banner.dataset.level = problem[0];
      if (banner.textContent !== problem[1]) { banner.textContent = problem[1]; }
    }
  }
  window.addEventListener("pagehide", function () { leaving = true; });
  document.addEventListener("htmx:wsOpen", function () {
    socketUp = true; closeCode = 0; retries = 0;
    applyLink();
  });
  document.addEventListener("htmx:wsClose", function (event) {
    if (leaving) { return; }
    socketUp = false;
    closeCode = (event.detail.event && event.detail.event.code) || 0;
    var indicator = document.getElementById("connection");
    if (indicator) { indicator.dataset.status = "offline"; }
    applyLink();
    // htmx retries abnormal closures itself; a clean close (a desk restart) we retry here.
    if ([1006, 1011, 1012, 1013].indexOf(closeCode) < 0 && closeCode < 4000 && event.detail.socketWrapper) {
      var wrapper = event.detail.socketWrapper;
      retries += 1;
      setTimeout(function () { wrapper.reconnect(); }, Math.random() * Math.min(30000, 1000 * Math.pow(2, retries)));
    }
  });

  // -- ringing: sound, title, notification, focus ----------------------------------------------
  var activated = false, audio = null, flashTimer = null, notifications = {};
  function userHasInteracted() {
    return activated || !!(navigator.userActivation && navigator.userActivation.hasBeenActive);
  }
  function startRing() {
    if (!userHasInteracted() || !desk.dataset.ringSrc) { return; }  // browsers block sound before
    try {
      if (!audio) { audio = new Audio(desk.dataset.ringSrc); audio.loop = true; }
      if (audio.paused) {
        var played = audio.play();
        if (played && played.catch) { played.catch(function () {}); }
      }
    } catch (e) { /* no sound is better than no desk */ }
  }
  function stopRing() {
    if (audio && !audio.paused) { audio.pause(); audio.currentTime = 0; }
  }
  function flashTitle(text) {
    var on = true;
    document.title = text;
    clearInterval(flashTimer);
    flashTimer = setInterval(function () { on = !on; document.title = on ? text : baseTitle; }, 1000);
  }
  function stopFlash() {
    if (flashTimer) { clearInterval(flashTimer); flashTimer = null; document.title = baseTitle; }
  }
  function notify(card) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") { return; }
    try {
      var note = new Notification("Incoming call", { body: "Call from " + card.dataset.parties, tag: card.id });
      note.onclick = function () { window.focus(); note.close(); };
      notifications[card.id] = note;
    } catch (e) { /* some browsers allow notifications only from a service worker */ }
  }
  function askForNotifications() {
    // Asked once, on the first contact-center login click; never again, whatever the answer.
    try {
      if (!("Notification" in window) || Notification.permission !== "default") { return; }
      if (localStorage.getItem("switchboard.notifications.asked")) { return; }
      localStorage.setItem("switchboard.notifications.asked", "1");
      var asked = Notification.requestPermission();
      if (asked && asked.catch) { asked.catch(function () {}); }
    } catch (e) { /* storage or notifications unavailable */ }
  }
  function onInteraction() {
    activated = true;
    if (document.querySelector('#calls .call-card[data-state="Ringing"]')) { startRing(); }
  }
  document.addEventListener("pointerdown", onInteraction, true);
  document.addEventListener("keydown", onInteraction, true);

  // -- what changed: announcements and ringing ---------------------------------------------------
  var known = null, knownAgentState = null;
  var AGENT_STATES = { LoggedOut: "Logged out", NotReady: "Not ready", Ready: "Ready", AfterCallWork: "After-call work" };
  function describe(card) {
    var who = card.dataset.parties, consult = card.dataset.parent ? "Consult call" : "Call";
    switch (card.dataset.state) {
      case "Ringing": return consult + " from " + who + " ringing";
      case "Dialing": return "Calling " + who;
      case "Established": return consult + " with " + who + " connected";
      case "Held": return consult + " with " + who + " on hold";
      default: return consult + " with " + who + " " + String(card.dataset.state).toLowerCase();
    }
  }
  function announce(text) {
    if (!announcer || !text) { return; }
    announcer.textContent = "";
    setTimeout(function () { announcer.textContent = text; }, 50);
  }
  function syncCards() {
    var now = {}, messages = [], newlyRinging = [];
    cards().forEach(function (card) {
      now[card.id] = { state: card.dataset.state, parties: card.dataset.parties, parent: card.dataset.parent };
      var before = known && known[card.id];
      if (!before || before.state !== card.dataset.state) {
        messages.push(describe(card));
        if (card.dataset.state === "Ringing") { newlyRinging.push(card); }
      }
    });
    Object.keys(known || {}).forEach(function (id) {
      if (!now[id]) { messages.push((known[id].parent ? "Consult call" : "Call") + " with " + known[id].parties + " ended"); }
    });
    var state = document.getElementById("agent-state");
    var agentState = state ? state.dataset.state : null;
    if (knownAgentState && agentState && agentState !== knownAgentState) {
      messages.push("You are " + (AGENT_STATES[agentState] || agentState));
    }
    if (known) { announce(messages.join(". ")); }
    known = now;
    knownAgentState = agentState;

    var ringing = $$('#calls .call-card[data-state="Ringing"]');
    if (ringing.length) {
      startRing();
      flashTitle("☎ Call from " + ringing[0].dataset.parties);
    } else {
      stopRing();
      stopFlash();
    }
    Object.keys(notifications).forEach(function (id) {
      var card = document.getElementById(id);
      if (!card || card.dataset.state !== "Ringing") { notifications[id].close(); delete notifications[id]; }
    });
    newlyRinging.forEach(notify);
    if (newlyRinging.length && !isEditable(document.activeElement) && !document.querySelector("dialog[open]")) {
      var answer = newlyRinging[0].querySelector('[data-operation="Answer"]');
      if (answer) { answer.focus(); }
    }
  }

  // -- re-rendered cards keep what the agent had open, typed and focused --------------------------
  var saved = null, lastAction = null;
  function focusKey(el) {
    if (el.dataset.operation) { return '[data-operation="' + el.dataset.operation + '"]'; }
    var form = el.closest("form[data-operation]");
    if (form && el.name) { return 'form[data-operation="' + form.dataset.operation + '"] [name="' + el.name + '"]'; }
    var details = el.closest("details[data-disclosure]");
    if (details && el.matches("summary")) { return 'details[data-disclosure="' + details.dataset.disclosure + '"] > summary'; }
    return null;
  }
  function rememberUi() {
    var state = { cards: {}, focus: null };
    cards().forEach(function (card) {
      var open = $$("details[open]", card).filter(function (d) { return !d.dataset.submitted; })
        .map(function (d) { return d.dataset.disclosure; });
      var values = {};
      $$("form[data-operation] input:not([type=hidden])", card).forEach(function (input) {
        var details = input.closest("details");
        if (input.value && !(details && details.dataset.submitted)) {
          values['form[data-operation="' + input.form.dataset.operation + '"] [name="' + input.name + '"]'] = input.value;
        }
      });
      state.cards[card.id] = { open: open, values: values };
    });
    var active = document.activeElement, card = active && active.closest && active.closest(".call-card");
    if (card) { state.focus = { container: card.id, key: focusKey(active) }; }
    return state;
  }
  function restoreUi(state) {
    if (!state) { return; }
    Object.keys(state.cards).forEach(function (id) {
      var card = document.getElementById(id);
      if (!card) { return; }
      state.cards[id].open.forEach(function (name) {
        var details = card.querySelector('details[data-disclosure="' + name + '"]');
        if (details) { details.open = true; }
      });
      Object.keys(state.cards[id].values).forEach(function (selector) {
        var input = card.querySelector(selector);
        if (input && !input.value) { input.value = state.cards[id].values[selector]; }
      });
    });
    // Focus goes back where it was; if it was already lost (a clicked button was disabled while
    // pending), to the control that was used, or the card's first call control.
    var target = state.focus || (lastAction && Date.now() - lastAction.at < 10000 ? lastAction : null);
    if (focusLost() && target) {
      var container = document.getElementById(target.container);
      var el = container && ((target.key && container.querySelector(target.key)) ||
        container.querySelector(".call-actions button:not([disabled])") ||
        container.querySelector("button:not([disabled])"));
      if (el) { el.focus(); }
    }
  }
  document.addEventListener("htmx:wsBeforeMessage", function () { saved = rememberUi(); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    restoreUi(saved);
    saved = null;
    applyLink();
    syncCards();
    tick();
  });

  // -- requests: pending until the push arrives; refusals leave the card as it is -----------------
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt, container = elt.closest(".call-card, #agent-state");
    if (container) {
      var control = elt.matches("form") ? elt.querySelector("button[type=submit]") : elt;
      lastAction = { container: container.id, key: control ? focusKey(control) : null, at: Date.now() };
    }
    var details = elt.matches("form") && elt.closest("details");
    if (details) { details.dataset.submitted = "1"; }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt, xhr = event.detail.xhr;
    if (!document.contains(elt)) { return; }  // already re-rendered by a push
    var details = elt.matches("form") && elt.closest("details");
    if (!xhr || xhr.status !== 204) {
      if (details) { delete details.dataset.submitted; }
      return;
    }
    if (elt.id === "dial") { elt.reset(); return; }
    if (!elt.closest(".call-card, #agent-state")) { return; }
    var button = elt.matches("form") ? elt.querySelector("button[type=submit]") : elt;
    if (!button) { return; }
    button.disabled = true;
    button.classList.add("is-pending");
    button.setAttribute("aria-busy", "true");
    setTimeout(function () {
      if (details) { delete details.dataset.submitted; }
      if (!document.contains(button)) { return; }
      button.disabled = false;
      button.classList.remove("is-pending");
      button.removeAttribute("aria-busy");
    }, PENDING_MS);
  });

  // -- toasts: dismissable, gone after a while unless the agent is reading them -------------------
  function expire(toast) {
    setTimeout(function () {
      if (!document.contains(toast)) { return; }
      if (toast.matches(":hover, :focus-within")) { expire(toast); return; }
      toast.remove();
    }, TOAST_MS);
  }
  var toasts = document.getElementById("toasts");
  if (toasts) {
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        Array.prototype.forEach.call(change.addedNodes, function (node) {
          if (node.nodeType === 1 && node.classList.contains("toast")) { expire(node); }
        });
      });
    }).observe(toasts, { childList: true });
  }

  // -- clicks: toast dismissal, keypads, the shortcut list, the notification question -------------
  document.addEventListener("click", function (event) {
    var target = event.target;
    var dismiss = target.closest("[data-dismiss-toast]");
    if (dismiss) { dismiss.closest(".toast").remove(); return; }
    var key = target.closest(".keypad [data-key]");
    if (key) {
      var input = document.getElementById(key.closest(".keypad").dataset.keypadFor);
      if (input) {
        input.value = key.dataset.key === "Backspace" ? input.value.slice(0, -1) : input.value + key.dataset.key;
        input.dispatchEvent(new Event("input", { bubbles: true }));
      }
      return;
    }
    if (target.closest("[data-open-shortcuts]")) { openShortcuts(); return; }
    if (target.closest('[data-agent-operation="Login"]')) { askForNotifications(); }
  });

  // -- keyboard shortcuts (never while typing) ----------------------------------------------------
  function openShortcuts() {
    if (shortcutsDialog && !shortcutsDialog.open) { shortcutsDialog.showModal(); }
  }
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    if (isEditable(event.target) || document.querySelector("dialog[open]")) { return; }
    var key = event.key;
    if (key === "?") { event.preventDefault(); openShortcuts(); return; }
    if (!/^[a-z]$/.test(key)) { return; }
    if (key === "d") {
      var dial = document.getElementById("dial-destination");
      if (dial) { event.preventDefault(); dial.focus(); }
      return;
    }
    if (desk.dataset.link === "down") { return; }
    var control = document.querySelector('#agent-state [data-shortcut="' + key + '"]');
    var cardsInOrder = byRelevance();
    for (var i = 0; !control && i < cardsInOrder.length; i++) {
      control = cardsInOrder[i].querySelector('[data-shortcut="' + key + '"]');
    }
    if (!control || control.disabled) { return; }
    event.preventDefault();
    var form = control.closest("form[data-operation]");
    var field = form && form.querySelector("input:not([type=hidden])");
    if (field) {
      var details = control.closest("details");
      if (details) { details.open = true; }
      field.focus();
    } else {
      control.click();
    }
  });

  applyLink();
  syncCards();
  tick();
})();
