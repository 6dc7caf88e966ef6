import "./widgets.css";
import { label } from "./label.js";
document.getElementById("out").textContent = label(1);
