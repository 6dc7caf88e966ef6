import { greet } from "./greet";
greet("golden");
