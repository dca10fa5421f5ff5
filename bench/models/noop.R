# A no-op R model for test/conformance/runtime-overhead.ts: answers "0" for each input, so only the
# R runtime (httpuv, RProtoBuf, the Connect protocol) is measured.
predict <- function(inputs) rep("0", length(inputs))
