console.log("plain script, copied as is");
//# sourceMappingURL=plain.2c6a7407.js.map
