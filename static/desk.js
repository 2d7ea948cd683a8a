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
    var left = state && state.querySelector("[data-wrap-up-left]");
    if (left && left.dataset.until) { left.textContent = clock(Number(left.dataset.until) - now); }
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
    // The worker's own words for why the session is down, when it gave them.
    var reason = indicator && indicator.querySelector(".connection-reason");
    var why = reason ? reason.textContent.trim() + " " : "";
    if (status === "reconnecting") {
      return ["reconnecting", why + "Reconnecting to the Voice API… Call and agent controls are off until it is back."];
    }
    if (status === "refused") {
      return ["offline", why || "Your contact-center credentials were refused: ask your administrator."];
    }
    if (status === "offline") {
      return ["offline", why ? why + "Call and agent controls are off." : "The Voice API cannot be reached. Call and agent controls are off until it is back."];
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

  // -- consults sit under their parents ------------------------------------------------------------
  // A new card is pushed to the end of #calls, never "after its parent": htmx drops a swap whose
  // target is missing, and the parent may be gone or not pushed yet. Here each consult moves right
  // under its parent, as the snapshot orders them; only cards out of place move, focus stays put.
  function placeConsults() {
    var region = document.getElementById("calls");
    if (!region) { return; }
    var all = cards(), present = {}, placed = {}, ordered = [];
    all.forEach(function (card) { present[card.id] = true; });
    function place(card) {
      if (placed[card.id]) { return; }
      placed[card.id] = true;
      ordered.push(card);
      all.forEach(function (other) {
        if (other.dataset.parent && "call-" + other.dataset.parent === card.id) { place(other); }
      });
    }
    all.forEach(function (card) {
      if (!card.dataset.parent || !present["call-" + card.dataset.parent]) { place(card); }
    });
    all.forEach(place);  // parents in a loop, which no switch makes, keep their cards all the same
    var active = document.activeElement, previous = null;
    ordered.forEach(function (card) {
      var expected = previous ? previous.nextElementSibling : region.firstElementChild;
      if (card !== expected) { region.insertBefore(card, expected); }
      previous = card;
    });
    if (active && active !== document.body && document.contains(active) && document.activeElement !== active) {
      active.focus();
    }
  }

  // -- focus never falls to the page body ----------------------------------------------------------
  // When the control the agent used goes away (a card ends, a button waits disabled for its push),
  // focus goes to the same control re-rendered, else that card's first control, else the next card's,
  // else the dial pad: keyboard and screen-reader users never have to start again from the top.
  function firstControl(container) {
    return container.querySelector(".call-actions button:not([disabled])") ||
      container.querySelector("button:not([disabled])");
  }
  function focusNear(order, id) {
    var i = (order || []).indexOf(id), card = null, j;
    for (j = i + 1; i >= 0 && !card && j < order.length; j++) { card = document.getElementById(order[j]); }
    for (j = i - 1; !card && j >= 0; j--) { card = document.getElementById(order[j]); }
    card = card || byRelevance()[0];
    var el = (card && firstControl(card)) || document.getElementById("dial-destination");
    if (el) { el.focus(); }
  }
  function recentAction() {
    return lastAction && Date.now() - lastAction.at < 10000 ? lastAction : null;
  }

  // -- re-rendered cards keep what the agent had open, typed and focused --------------------------
  var saved = null, lastAction = null;
  function focusKey(el) {
    if (el.dataset.operation) { return '[data-operation="' + el.dataset.operation + '"]'; }
    if (el.dataset.agentOperation) { return '[data-agent-operation="' + el.dataset.agentOperation + '"]'; }
    if (el.dataset.key && el.closest(".keypad")) { return '.keypad [data-key="' + el.dataset.key + '"]'; }
    var form = el.closest("form[data-operation]");
    if (form && el.name) { return 'form[data-operation="' + form.dataset.operation + '"] [name="' + el.name + '"]'; }
    if (form && el.matches("button[type=submit]")) { return 'form[data-operation="' + form.dataset.operation + '"] button[type=submit]'; }
    var details = el.closest("details[data-disclosure]");
    if (details && el.matches("summary")) { return 'details[data-disclosure="' + details.dataset.disclosure + '"] > summary'; }
    return null;
  }
  function rememberUi() {
    var state = { cards: {}, focus: null, order: cards().map(function (card) { return card.id; }) };
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
    var target = state.focus || recentAction();
    var container = target && document.getElementById(target.container);
    if (focusLost() && container) {
      var el = target.key && container.querySelector(target.key);
      // A control still waiting disabled for its push keeps the agent's place: that push restores it.
      if (!el || !el.disabled) {
        if (el) { el.focus(); }  // fails when it is hidden, in a disclosure the push closed
        var first = focusLost() && firstControl(container);
        if (first) { first.focus(); }
      }
    }
    // The card went away: the next card (else the one before), else the dial pad.
    if (focusLost() && target && !container) {
      focusNear(state.order, target.container);
    }
  }
  document.addEventListener("htmx:wsBeforeMessage", function () { saved = rememberUi(); });
  document.addEventListener("htmx:wsAfterMessage", function () {
    placeConsults();
    restoreUi(saved);
    saved = null;
    syncSent();
    applyLink();
    syncCards();
    tick();
  });

  // -- requests: pending until the push arrives; refusals leave the card as it is -----------------
  function sendsDtmf(elt) { return !!(elt.closest && elt.closest('form[data-operation="SendDtmf"]')); }
  function refocus(elt) {
    var control = elt.matches("form") ? elt.querySelector("button[type=submit]") : elt;
    if (focusLost() && control && !control.disabled) { control.focus(); }
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt, container = elt.closest(".call-card, #agent-state");
    if (container) {
      var control = elt.matches("form") ? elt.querySelector("button[type=submit]") : elt;
      lastAction = { container: container.id, key: control ? focusKey(control) : null, at: Date.now() };
    }
    // A sent transfer or data form closes with its push; the keypad stays open for the next digits.
    var details = elt.matches("form") && !sendsDtmf(elt) && elt.closest("details");
    if (details) { details.dataset.submitted = "1"; }
    // The DtmfSent push often re-renders the card before the answer comes, and htmx then tells only
    // the detached element: listen on the element itself.
    if (sendsDtmf(elt)) {
      var done = function (answer) {
        if (answer.target !== elt) { return; }  // a key's request, bubbling up to its form
        elt.removeEventListener("htmx:afterRequest", done);
        var xhr = answer.detail.xhr;
        dtmfDone(elt, !!xhr && xhr.status === 204, answer.detail.requestConfig);
      };
      elt.addEventListener("htmx:afterRequest", done);
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    // The element that sent the request, even when a push re-rendered its card meanwhile (htmx then
    // reports the event on an ancestor that is still on the page).
    var config = event.detail.requestConfig, elt = (config && config.elt) || event.detail.elt;
    var xhr = event.detail.xhr, ok = !!xhr && xhr.status === 204;
    if (sendsDtmf(elt)) { return; }  // its own listener, set before the request, handles it
    if (!document.contains(elt)) { return; }  // already re-rendered by a push
    var details = elt.matches("form") && elt.closest("details");
    if (!ok) {
      if (details) { delete details.dataset.submitted; }
      refocus(elt);  // htmx re-enabled the control it disabled during the request
      return;
    }
    if (elt.id === "dial") {
      elt.reset();
      if (focusLost()) { document.getElementById("dial-destination").focus(); }
      return;
    }
    if (!elt.closest(".call-card, #agent-state")) { refocus(elt); return; }
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
      if (focusLost()) { button.focus(); }  // no push came: the agent may try again from here
    }, PENDING_MS);
  });

  // -- the card's keypad: each key goes out as it is pressed --------------------------------------
  // One SendDtmf per key, in the order pressed and one request at a time, so an IVR hears each digit
  // when the agent presses it. The pad stays open, and "Sent:" shows what went out on the call (kept
  // here, as the Voice API does not say it again, and put back when a push re-renders the card).
  var dtmfSent = {}, keyQueue = Promise.resolve(), presses = 0;
  function showSent(card) {
    var line = card.querySelector("[data-dtmf-sent]"), out = line && line.querySelector("[data-dtmf-sent-digits]");
    if (!out) { return; }
    var digits = dtmfSent[card.id] || "";
    if (out.textContent !== digits) { out.textContent = digits; }
    line.hidden = !digits;
  }
  function syncSent() {
    var present = {};
    cards().forEach(function (card) { present[card.id] = true; showSent(card); });
    Object.keys(dtmfSent).forEach(function (id) { if (!present[id]) { delete dtmfSent[id]; } });
  }
  function sendKey(key) {
    var cardId = key.closest(".call-card").id, digit = key.dataset.key;
    var path = key.closest("form").getAttribute("hx-post");
    // Unique per press: the desk takes two identical requests in a row for a double click, and an
    // IVR menu may well want "1" twice.
    presses += 1;
    var press = Date.now().toString(36) + "." + presses;
    keyQueue = keyQueue.then(function () {
      var card = document.getElementById(cardId);  // a push may have re-rendered it meanwhile
      var source = card && card.querySelector('form[data-operation="SendDtmf"] .keypad [data-key="' + digit + '"]');
      if (!source) { return null; }  // the call ended or no longer takes digits
      var sent = htmx.ajax("POST", path, {
        source: source, swap: "none", values: { operation: "SendDtmf", digits: digit, press: press },
      });
      var late = new Promise(function (resolve) { setTimeout(resolve, PENDING_MS); });
      return Promise.race([sent, late]).catch(function () { /* a toast or the banner says why */ });
    });
  }
  function dtmfDone(elt, ok, config) {
    var sentFrom = elt.closest(".call-card");
    if (!sentFrom) { return; }
    var digits = (config && config.formData && config.formData.get("digits")) || "";
    var card = document.getElementById(sentFrom.id);
    if (ok && digits) {
      dtmfSent[sentFrom.id] = (dtmfSent[sentFrom.id] || "") + digits;
      if (card) { showSent(card); }
    }
    if (!card) { return; }
    if (elt.matches("form")) {
      var input = card.querySelector('form[data-operation="SendDtmf"] [name="digits"]');
      if (ok && input && input.value === digits) { input.value = ""; }
      if (input && focusLost()) { input.focus(); }
    } else if (focusLost()) {
      var again = card.querySelector('.keypad [data-key="' + elt.dataset.key + '"]');
      if (again) { again.focus(); }
    }
  }

  // -- toasts: dismissable, gone after a while unless the agent is reading them or they stay ------
  // A toast with data-notify (a missed call) also raises a browser notification while the tab is
  // hidden; a sticky one stays until the agent dismisses it.
  function notifyToast(toast) {
    if (!toast.dataset.notify || !document.hidden || !("Notification" in window)) { return; }
    if (Notification.permission !== "granted") { return; }
    try {
      var note = new Notification(toast.dataset.notify, { body: toast.textContent.trim(), tag: toast.id || undefined });
      note.onclick = function () { window.focus(); note.close(); };
    } catch (error) { /* some browsers allow notifications from a service worker only */ }
  }
  function expire(toast) {
    notifyToast(toast);
    if (toast.classList.contains("sticky")) { return; }
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
    if (dismiss) {
      dismiss.closest(".toast").remove();
      if (focusLost()) { focusNear([], ""); }
      return;
    }
    var key = target.closest(".keypad [data-key]");
    if (key && key.dataset.key !== "Backspace" && sendsDtmf(key)) { sendKey(key); return; }
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
  // The dial pad is where focus goes when the last call ends. No phone number starts with a letter,
  // so a letter typed into the empty dial pad is still a shortcut (r for Ready, w for after-call work).
  function typing(el) { return isEditable(el) && !(el.id === "dial-destination" && !el.value); }
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    if (typing(event.target) || document.querySelector("dialog[open]")) { return; }
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

  placeConsults();
  applyLink();
  syncCards();
  tick();
})();
