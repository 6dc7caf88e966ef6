function o(e){console.log(`hello, ${e}`)}o("golden");
//# sourceMappingURL=main.6a204729.js.map
