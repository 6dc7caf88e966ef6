console.log("plain script, copied as is");
//# sourceMappingURL=plain.js.map
