// Promise.withResolvers (ES2024) is missing from node 20; a few transitive
// dependencies of @chainsafe/lodestar 1.5.1 (it-queue via mortice) call it.
// Loaded with NODE_OPTIONS="--require <this file>" by the lodestar wrapper.
"use strict";
if (typeof Promise.withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return {promise, resolve, reject};
    },
  });
}
