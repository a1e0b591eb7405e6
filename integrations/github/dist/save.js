// src/save.js
var import_common = require("./common.js");
void (0, import_common.save)({ fromState: false });
