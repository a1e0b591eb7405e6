// src/restore.js
var import_common = require("./common.js");
void (0, import_common.restore)({ keepState: false });
