import "../css/widgets.css";
import { markCurrentLink } from "./nav";

markCurrentLink(document.location.pathname);

const button = document.querySelector<HTMLButtonElement>("#open-gallery");
button?.addEventListener("click", async () => {
  // Loaded on demand: esbuild splits it into its own chunk.
  const { renderGallery } = await import("./gallery");
  renderGallery(document.querySelector("#gallery")!);
});
