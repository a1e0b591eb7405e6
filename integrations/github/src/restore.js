import { restore } from "./common.js";

void restore({ keepState: false });
