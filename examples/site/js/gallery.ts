import { markCurrentLink } from "./nav";

interface Tile {
  title: string;
  hue: number;
}

const tiles: Tile[] = [
  { title: "Hashed", hue: 210 },
  { title: "Immutable", hue: 150 },
  { title: "Cached for a year", hue: 30 },
];

export function renderGallery(root: HTMLElement): void {
  root.classList.add("gallery");
  for (const t of tiles) {
    const el = document.createElement("div");
    el.textContent = t.title;
    el.style.background = `hsl(${t.hue} 70% 60%)`;
    root.append(el);
  }
  markCurrentLink(document.location.pathname);
}
