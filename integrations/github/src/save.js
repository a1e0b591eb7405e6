import { save } from "./common.js";

void save({ fromState: false });
