export function markCurrentLink(pathname: string): void {
  for (const a of Array.from(document.querySelectorAll<HTMLAnchorElement>("nav a"))) {
    if (new URL(a.href).pathname === pathname) {
      a.setAttribute("aria-current", "page");
    }
  }
}
