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
    ["calls", "agent-state", "dial", "team"].forEach(function (id) {
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
  // A closed socket comes back soon, then less often: the first try after 0.25 to 0.5 s (a restarted
  // desk process is often back by then), doubling up to 30 s. Half of each pause is random, so the
  // tabs of a desk do not all return at once. htmx uses it for abnormal closes, we for clean ones.
  function reconnectDelay(retry) {
    var pause = Math.min(30000, 500 * Math.pow(2, retry));
    return pause / 2 + Math.random() * pause / 2;
  }
  if (window.htmx) { htmx.config.wsReconnectDelay = reconnectDelay; }
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
      setTimeout(function () { wrapper.reconnect(); }, reconnectDelay(retries));
      retries += 1;
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
    if (el) { focusQuietly(el); }
  }
  // Focus the desk moves by itself opens no directory list; on the dial pad it also keeps letters
  // as shortcuts until the agent goes there (see typing).
  var quietFocus = false;
  function focusQuietly(el) {
    quietFocus = true;
    try { el.focus(); } finally { quietFocus = false; }
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
    quietFocus = true;
    try { restoreUi(saved); } finally { quietFocus = false; }
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
  // A refused form whose card a push re-rendered while it was on its way (a refusal makes the desk
  // read the calls again): the agent stays where they were, at the same form in the new card, open,
  // with what they typed, the focus on its button.
  function refusedAfterPush(sent) {
    var card = sent.closest(".call-card"), now = card && document.getElementById(card.id);
    var form = now && now.querySelector('form[data-operation="' + sent.dataset.operation + '"]');
    if (!form) { return; }
    var details = form.closest("details");
    if (details) { delete details.dataset.submitted; details.open = true; }
    $$("input:not([type=hidden])", sent).forEach(function (typed) {
      var input = form.querySelector('[name="' + typed.name + '"]');
      if (input && !input.value) { input.value = typed.value; }
    });
    var button = form.querySelector("button[type=submit]"), active = document.activeElement;
    if (button && !button.disabled && (focusLost() || now.contains(active))) { button.focus(); }
  }
  function searchesDirectory(elt) { return !!(elt.closest && elt.closest("[data-directory]")); }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (searchesDirectory(event.detail.elt)) { return; }  // a search, not an action
    var elt = event.detail.elt, container = elt.closest(".call-card, #agent-state");
    if (container) {
      var control = elt.matches("form") ? elt.querySelector("button[type=submit]") : elt;
      lastAction = { container: container.id, key: control ? focusKey(control) : null, at: Date.now() };
    }
    // A sent transfer or data form closes with its push; the keypad stays open for the next digits.
    var details = elt.matches("form") && !sendsDtmf(elt) && elt.closest("details");
    if (details) { details.dataset.submitted = "1"; }
    // A refused form's card may be re-rendered before the answer comes, and htmx then tells only the
    // detached form: listen on the form itself.
    if (elt.matches("form[data-operation]") && !sendsDtmf(elt) && container) {
      var answered = function (answer) {
        if (answer.target !== elt) { return; }
        elt.removeEventListener("htmx:afterRequest", answered);
        var xhr = answer.detail.xhr;
        if (!document.contains(elt) && !(xhr && xhr.status === 204)) { refusedAfterPush(elt); }
      };
      elt.addEventListener("htmx:afterRequest", answered);
    }
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
    if (searchesDirectory(elt)) { return; }
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
      if (focusLost()) { focusQuietly(document.getElementById("dial-destination")); }
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
  // A refusal whose form a push re-rendered while it was on its way (a refused operation makes the
  // desk read the calls again): htmx looks for #toasts beside the detached form, finds none and
  // drops the toast. It belongs on the page all the same.
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var content = event.detail && event.detail.content;
    if (!toasts || !content || content.id !== "toasts") { return; }
    while (content.firstChild) { toasts.appendChild(content.firstChild); }
  });
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
  // so a letter typed into the empty dial pad the desk moved focus to is still a shortcut (r for
  // Ready, w for after-call work); once the agent goes there, letters search the directory.
  function typing(el) {
    return isEditable(el) && !(el.id === "dial-destination" && !el.value && el.dataset.quietFocus);
  }
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

  // -- the directory: colleagues with their live state, speed dials and recent numbers -----------
  // Under each transfer, conference and dial form's number. It is fetched from the desk as the agent
  // types (debounced) and again every second while it is open, so a colleague's state is live
  // without every agent's change being pushed to every desk. The number field is an ARIA combobox:
  // arrow keys move through the options, Enter or a click fills the number in, Escape closes.
  var DIRECTORY_DEBOUNCE_MS = 150, DIRECTORY_REFRESH_MS = 1000;
  var directoryTyping = null, directoryRefresh = null, directoryReopen = null;
  function directoryInput(el) { return el && el.matches && el.matches("input[data-directory-input]") ? el : null; }
  function directoryList(input) {
    var list = document.getElementById(input.getAttribute("aria-controls") || "");
    return list && list.matches("[data-directory]") ? list : null;
  }
  function directoryOpen(input) { var list = directoryList(input); return !!list && !list.hidden; }
  function directoryOptions(list) { return $$("[data-directory-entry]", list); }
  function optionKey(option) { return option.dataset.kind + ":" + option.dataset.number; }
  function fetchDirectory(input) {
    var list = directoryList(input);
    if (!list || list.hidden || document.hidden) { return; }
    var q = input.value;
    htmx.ajax("GET", list.dataset.directoryUrl, { source: list, target: list, swap: "innerHTML", values: { q: q } })
      .catch(function () { /* the next refresh tries again; the banner says when the desk is down */ });
  }
  function openDirectory(input) {
    var list = directoryList(input);
    if (!list) { return; }
    delete input.dataset.quietFocus;
    if (list.hidden) {
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }
    fetchDirectory(input);
    clearInterval(directoryRefresh);
    directoryRefresh = setInterval(function () {
      if (!document.contains(input) || document.activeElement !== input || !directoryOpen(input)) {
        closeDirectory(input);
        return;
      }
      fetchDirectory(input);
    }, DIRECTORY_REFRESH_MS);
  }
  function closeDirectory(input) {
    var list = directoryList(input);
    clearInterval(directoryRefresh);
    clearTimeout(directoryTyping);
    directoryRefresh = null;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    if (list && document.contains(list)) {
      htmx.trigger(list, "htmx:abort");
      list.hidden = true;
      list.textContent = "";
      delete list.dataset.active;
      delete list.dataset.pickFirst;
    }
  }
  function setActiveOption(input, option) {
    var list = directoryList(input);
    if (!list) { return; }
    directoryOptions(list).forEach(function (each) { each.setAttribute("aria-selected", each === option ? "true" : "false"); });
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      list.dataset.active = optionKey(option);
      option.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
      delete list.dataset.active;
    }
  }
  function activeOption(input) {
    var id = input.getAttribute("aria-activedescendant"), option = id && document.getElementById(id);
    return option && option.matches("[data-directory-entry]") ? option : null;
  }
  function moveActive(input, step) {
    var list = directoryList(input), options = list ? directoryOptions(list) : [];
    if (!options.length) { return; }
    var i = options.indexOf(activeOption(input));
    i = i < 0 ? (step > 0 ? 0 : options.length - 1) : (i + step + options.length) % options.length;
    setActiveOption(input, options[i]);
  }
  function chooseOption(input, option) {
    input.value = option.dataset.number;
    closeDirectory(input);
    if (document.activeElement !== input) { input.focus(); }
    var name = option.querySelector(".entry-name");
    announce((name ? name.textContent.trim() + ", " : "") + option.dataset.number + " filled in");
  }
  // A new list keeps the option the agent had reached, by what it is, not where it was.
  document.addEventListener("htmx:afterSwap", function (event) {
    var list = event.detail.target;
    if (!list || !list.matches || !list.matches("[data-directory]")) { return; }
    var input = document.querySelector('[aria-controls="' + list.id + '"]');
    var keep = list.dataset.active, active = null;
    directoryOptions(list).forEach(function (option, i) {
      option.id = list.id + "-option-" + i;
      if (keep && optionKey(option) === keep) { active = option; }
    });
    if (!input) { return; }
    setActiveOption(input, active);
    var wanted = list.dataset.pickFirst;
    if (wanted === undefined || wanted !== shownQuery(list)) { return; }  // not the answer it waits for
    delete list.dataset.pickFirst;
    if (wanted === input.value.trim() && directoryOptions(list).length) {
      chooseOption(input, directoryOptions(list)[0]);
    }
  });
  document.addEventListener("focusin", function (event) {
    var input = directoryInput(event.target);
    if (!input) { return; }
    if (quietFocus) { input.dataset.quietFocus = "1"; return; }
    if (!directoryOpen(input)) { openDirectory(input); }
  });
  document.addEventListener("focusout", function (event) {
    var input = directoryInput(event.target);
    if (!input) { return; }
    delete input.dataset.quietFocus;
    if (directoryOpen(input)) { closeDirectory(input); }
  });
  document.addEventListener("pointerdown", function (event) {
    var input = directoryInput(event.target);
    if (input && document.activeElement === input && !directoryOpen(input)) { openDirectory(input); }
  });
  document.addEventListener("input", function (event) {
    var input = directoryInput(event.target);
    if (!input || document.activeElement !== input) { return; }  // a keypad key, not typing here
    clearTimeout(directoryTyping);
    directoryTyping = setTimeout(function () {
      if (document.activeElement !== input) { return; }
      var list = directoryList(input);
      if (list) { delete list.dataset.active; }
      if (directoryOpen(input)) { fetchDirectory(input); } else { openDirectory(input); }
    }, DIRECTORY_DEBOUNCE_MS);
  });
  document.addEventListener("keydown", function (event) {
    var input = directoryInput(event.target);
    if (!input || event.ctrlKey || event.metaKey || event.isComposing) { return; }
    var open = directoryOpen(input);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (!open) { openDirectory(input); return; }
      if (!event.altKey) { moveActive(input, event.key === "ArrowDown" ? 1 : -1); }
      return;
    }
    if (event.key === "Escape" && open) {
      event.preventDefault();
      closeDirectory(input);
      return;
    }
    if (event.key === "Enter") {
      // The option reached with the arrow keys; or, when what was typed is no number (part of a
      // name), the first option found for exactly that, once the list shows it. A number as typed
      // is sent as it is.
      var option = open ? activeOption(input) : null;
      if (option) {
        event.preventDefault();
        chooseOption(input, option);
      } else if (input.value.trim() && !input.validity.valid) {
        event.preventDefault();
        pickFirst(input);
      }
    }
  });
  function shownQuery(list) {
    var shown = list.querySelector("[data-directory-query]");
    return shown ? shown.dataset.directoryQuery : null;
  }
  function pickFirst(input) {
    var list = directoryList(input);
    if (!list) { return; }
    if (!list.hidden && shownQuery(list) === input.value.trim()) {
      var first = directoryOptions(list)[0];
      if (first) { chooseOption(input, first); }
      return;
    }
    list.dataset.pickFirst = input.value.trim();  // the answer on its way picks it (htmx:afterSwap)
    clearTimeout(directoryTyping);
    if (list.hidden) { openDirectory(input); } else { fetchDirectory(input); }
  }
  // A press on the list keeps the focus in the number field; the click then picks the option.
  document.addEventListener("mousedown", function (event) {
    if (event.target.closest && event.target.closest("[data-directory]")) { event.preventDefault(); }
  });
  document.addEventListener("click", function (event) {
    var option = event.target.closest && event.target.closest("[data-directory] [data-directory-entry]");
    var input = option && document.querySelector('[aria-controls="' + option.closest("[data-directory]").id + '"]');
    if (input) { chooseOption(input, option); }
  });
  document.addEventListener("submit", function (event) {
    var input = event.target.querySelector && event.target.querySelector("[data-directory-input]");
    if (input && directoryOpen(input)) { closeDirectory(input); }
  }, true);
  // A push that re-renders the card under an open list: the list opens again under the new card.
  document.addEventListener("htmx:wsBeforeMessage", function () {
    var input = directoryInput(document.activeElement);
    directoryReopen = input && directoryOpen(input) ? focusKey(input) : null;
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var input = directoryInput(document.activeElement);
    if (input && directoryReopen && focusKey(input) === directoryReopen && !directoryOpen(input)) {
      openDirectory(input);
    }
    directoryReopen = null;
  });

  // -- the team board: clocks, filters by state, sorting; kept across pushes ------------------------
  // Rows are pushed whole (outerHTML) and the board is replaced on every snapshot: the lead's filter
  // and sort live here, and are applied again after each message. Focus on a row's control goes
  // back to the same control of the re-rendered row, else to its first control.
  var teamView = { filter: "", sort: "", descending: false };
  var STATE_ORDER = ["Ready", "NotReady", "AfterCallWork", "LoggedOut"];
  var LINK_ORDER = ["connected", "reconnecting", "offline", "refused"];
  function teamRows() { return $$("#team .team-members .member"); }
  function tickTeam() {
    var now = Date.now() / 1000;
    teamRows().forEach(function (row) {
      var timer = row.querySelector("[data-member-timer]");
      if (timer && row.dataset.since) { timer.textContent = clock(now - Number(row.dataset.since)); }
      var call = row.querySelector("[data-member-call]"), callTimer = row.querySelector("[data-call-timer]");
      if (call && callTimer && call.dataset.started) { callTimer.textContent = clock(now - Number(call.dataset.started)); }
    });
  }
  function sortKey(row) {
    switch (teamView.sort) {
      case "state": return [STATE_ORDER.indexOf(row.dataset.state), Number(row.dataset.since)];
      case "call": return [row.dataset.activity === "call" ? 0 : 1, Number(row.dataset.callSince || 0)];
      case "connection": return [LINK_ORDER.indexOf(row.dataset.connection), 0];
      default: return [(row.dataset.name || "").toLowerCase(), 0];
    }
  }
  function compare(a, b) {
    var ka = sortKey(a), kb = sortKey(b);
    var order = ka[0] < kb[0] ? -1 : ka[0] > kb[0] ? 1 : ka[1] - kb[1];
    return teamView.descending ? -order : order;
  }
  function applyTeamView() {
    var team = document.getElementById("team");
    if (!team) { return; }
    var shown = 0;
    teamRows().forEach(function (row) {
      var f = teamView.filter;
      row.hidden = !!f && !(row.dataset.state === f || (f === "call" && row.dataset.activity === "call"));
      if (!row.hidden) { shown += 1; }
    });
    $$("#team [data-filter]").forEach(function (button) {
      button.setAttribute("aria-pressed", button.dataset.filter === teamView.filter ? "true" : "false");
    });
    var none = team.querySelector(".team-none");
    if (none) { none.hidden = shown > 0 || !teamRows().length; }
    $$("#team [data-sort]").forEach(function (button) {
      var header = button.closest("[role=columnheader]"), sorted = button.dataset.sort === teamView.sort;
      header.setAttribute("aria-sort", sorted ? (teamView.descending ? "descending" : "ascending") : "none");
    });
    if (!teamView.sort) { return; }
    var rows = teamRows(), body = team.querySelector(".team-members");
    var active = document.activeElement;
    rows.slice().sort(compare).forEach(function (row, i) {
      if (body.children[i] !== row) { body.insertBefore(row, body.children[i] || null); }
    });
    if (active && document.contains(active) && document.activeElement !== active) { active.focus(); }
  }
  document.addEventListener("click", function (event) {
    var filter = event.target.closest("#team [data-filter]");
    if (filter) { teamView.filter = filter.dataset.filter; applyTeamView(); return; }
    var sort = event.target.closest("#team [data-sort]");
    if (sort) {
      teamView.descending = teamView.sort === sort.dataset.sort ? !teamView.descending : false;
      teamView.sort = sort.dataset.sort;
      applyTeamView();
    }
  });
  var teamFocus = null;
  function rowControlKey(el) {
    if (el.dataset.supervise) { return '[data-supervise="' + el.dataset.supervise + '"]'; }
    if (el.dataset.memberOperation) { return '[data-member-operation="' + el.dataset.memberOperation + '"]'; }
    if (el.name) { return '[name="' + el.name + '"]'; }
    return null;
  }
  document.addEventListener("htmx:wsBeforeMessage", function () {
    var active = document.activeElement, row = active && active.closest && active.closest("#team .member");
    teamFocus = row ? { row: row.id, key: rowControlKey(active) } : null;
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    applyTeamView();
    tickTeam();
    var row = teamFocus && document.getElementById(teamFocus.row);
    if (row && focusLost()) {
      var control = (teamFocus.key && row.querySelector(teamFocus.key + ":not([disabled])")) ||
        row.querySelector("button:not([disabled])");
      if (control) { control.focus(); }
    }
    teamFocus = null;
  });
  if (document.getElementById("team")) { setInterval(tickTeam, 1000); }

  placeConsults();
  applyLink();
  syncCards();
  tick();
  applyTeamView();
  tickTeam();
})();
