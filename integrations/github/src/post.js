import { save } from "./common.js";

void save({ fromState: true });
