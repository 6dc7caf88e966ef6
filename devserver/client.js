// assetctl dev live reload: one EventSource per tab. A page or script
// change reloads the page; a CSS-only change swaps the stylesheets in
// place; a build error shows an overlay until the next good build.
(() => {
  if (window.__assetctlLiveReload) return;
  window.__assetctlLiveReload = true;
  const overlayID = "__assetctl_error_overlay";
  let buildID = document.currentScript?.dataset.build || null;

  function hideOverlay() {
    document.getElementById(overlayID)?.remove();
  }

  function showOverlay(errors) {
    hideOverlay();
    const host = document.createElement("div");
    host.id = overlayID;
    host.style.cssText = "position:fixed;inset:0;z-index:2147483647;";
    const root = host.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = `
      .backdrop { position: fixed; inset: 0; background: rgba(0,0,0,.66); overflow: auto; }
      .panel { margin: 6vh auto; max-width: 960px; background: #181818; color: #eee; border-top: 6px solid #e5484d;
               font: 14px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; padding: 20px 24px;
               box-shadow: 0 8px 32px rgba(0,0,0,.5); }
      h1 { font-size: 16px; margin: 0 0 12px; color: #ff8b8b; }
      .msg { margin: 0 0 16px; }
      .loc { color: #7cc4ff; }
      .text { white-space: pre-wrap; }
      pre { margin: 6px 0 0; padding: 8px; background: #000; overflow-x: auto; }
      .hint { color: #999; margin-top: 12px; }`;
    const backdrop = document.createElement("div");
    backdrop.className = "backdrop";
    const panel = document.createElement("div");
    panel.className = "panel";
    const title = document.createElement("h1");
    title.textContent = errors.length === 1 ? "Build failed" : `Build failed: ${errors.length} errors`;
    panel.append(title);
    for (const e of errors) {
      const msg = document.createElement("div");
      msg.className = "msg";
      const loc = document.createElement("div");
      loc.className = "loc";
      let where = e.file || "";
      if (e.line) where += `:${e.line}` + (e.column ? `:${e.column}` : "");
      loc.textContent = where;
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = e.text;
      msg.append(loc, text);
      if (e.lineText) {
        const pre = document.createElement("pre");
        // Keep tabs so the caret lines up under indented code.
        const pad = e.lineText.slice(0, Math.max(0, e.column - 1)).replace(/[^\t]/g, " ");
        const caret = e.column ? "\n" + pad + "^" : "";
        pre.textContent = e.lineText + caret;
        msg.append(pre);
      }
      panel.append(msg);
    }
    const hint = document.createElement("div");
    hint.className = "hint";
    hint.textContent = "Fix the file and save: this overlay goes away by itself. Click outside it to look at the page meanwhile.";
    panel.append(hint);
    backdrop.append(panel);
    backdrop.addEventListener("click", (ev) => {
      if (ev.target === backdrop) hideOverlay();
    });
    root.append(style, backdrop);
    document.documentElement.append(host);
  }

  // swapSheets replaces each matching <link rel=stylesheet> by a new one and
  // removes the old one once the new one has loaded, so nothing flashes.
  function swapSheets(sheets) {
    let swapped = 0;
    for (const link of document.querySelectorAll('link[rel~="stylesheet"]')) {
      const url = new URL(link.href, location.href);
      if (url.origin !== location.origin) continue;
      const swap = sheets.find((s) => s.from === url.pathname);
      if (!swap) continue;
      const next = link.cloneNode();
      const to = new URL(swap.to, location.href);
      to.searchParams.set("assetctl", String(Date.now()));
      next.href = to.href;
      // The old integrity value would block the new bytes.
      if (swap.integrity) next.integrity = swap.integrity;
      else next.removeAttribute("integrity");
      next.onload = next.onerror = () => link.remove();
      link.after(next);
      swapped++;
    }
    return swapped;
  }

  function onMessage(data) {
    const m = JSON.parse(data);
    switch (m.type) {
      case "hello":
        if (m.errors && m.errors.length) {
          showOverlay(m.errors);
        } else {
          hideOverlay();
        }
        if (buildID && m.buildID && m.buildID !== buildID) {
          location.reload();
          return;
        }
        buildID = m.buildID || buildID;
        break;
      case "error":
        showOverlay(m.errors || []);
        break;
      case "css":
        hideOverlay();
        buildID = m.buildID;
        if (swapSheets(m.sheets || []) === 0) location.reload();
        break;
      case "reload":
        location.reload();
        break;
    }
  }

  // connect opens the event stream; relay, when set, passes each message on
  // to the other tabs. EventSource reconnects by itself after a dropped
  // stream; when it gives up (the server answered with an error while
  // restarting) start over.
  function connect(relay) {
    const events = new EventSource("/__assetctl/events");
    events.onmessage = (ev) => {
      onMessage(ev.data);
      if (relay) relay.postMessage(ev.data);
    };
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) setTimeout(() => connect(relay), 500);
    };
  }

  // Browsers allow six HTTP/1.1 connections per server, so tabs share one
  // stream: the tab holding the lock listens and relays to the others over
  // a BroadcastChannel; when it closes, another tab takes the lock over.
  // Without these APIs (a page reached over plain HTTP by a LAN address is
  // not a secure context) every tab listens for itself.
  if (window.BroadcastChannel && navigator.locks) {
    const channel = new BroadcastChannel("assetctl-live-reload");
    channel.onmessage = (ev) => onMessage(ev.data);
    let leading = false;
    navigator.locks.request("assetctl-live-reload", () => {
      leading = true;
      connect(channel);
      return new Promise(() => {}); // held for the life of the tab
    });
    // A tab that only follows learns the current state once, as a new
    // stream would tell it.
    fetch("/__assetctl/state", { cache: "no-store" })
      .then((r) => r.text())
      .then((data) => { if (!leading) onMessage(data); })
      .catch(() => {});
  } else {
    connect(null);
  }
})();
