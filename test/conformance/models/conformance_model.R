# The conformance kit's model for the R runtime (the contract: test/conformance/README.md).
#
#   sdk/r/clippermodel/inst/bin/clipper-r-model test/conformance/models/conformance_model.R
#
# Each input is answered with a JSON object: numeric inputs {"n": count, "sum": sum}, strings
# {"n": UTF-8 bytes, "echo": text}, bytes {"n": count, "sum": sum of the unsigned bytes}. Directives
# (a string or bytes "!fail", "!wrong-count", "!wrong-type", "!sleep:MS"; a numeric input
# [-999, code, ms] with code 1, 2, 3, 4) make the batch raise, answer one output too few, answer a
# non-string for that input, or sleep. CLIPPER_CONFORMANCE_LOAD_MS makes loading slow.

load_ms <- as.numeric(Sys.getenv("CLIPPER_CONFORMANCE_LOAD_MS", "0"))
message(sprintf("conformance-model: loading %.0f ms", load_ms))
Sys.sleep(load_ms / 1000)
message("conformance-model: loaded")

MAGIC <- -999
CODES <- c("fail", "wrong-count", "wrong-type", "sleep")
BANG <- as.raw(0x21)

# list(kind = ..., ms = ...) for a directive, NULL for data.
directive <- function(x) {
  if (is.raw(x)) {
    if (length(x) == 0 || x[[1]] != BANG) return(NULL)
    x <- rawToChar(x)
  }
  if (is.character(x)) {
    if (!startsWith(x, "!")) return(NULL)
    if (startsWith(x, "!sleep:")) return(list(kind = "sleep", ms = as.numeric(substring(x, 8))))
    return(list(kind = substring(x, 2), ms = 0))
  }
  if (length(x) >= 2 && x[[1]] == MAGIC && x[[2]] %in% seq_along(CODES)) {
    return(list(kind = CODES[[x[[2]]]], ms = if (length(x) > 2) x[[3]] else 0))
  }
  NULL
}

json <- function(...) as.character(jsonlite::toJSON(list(...), auto_unbox = TRUE, digits = NA))

answer <- function(x) {
  if (is.character(x)) return(json(n = nchar(x, type = "bytes"), echo = x))
  if (is.raw(x)) return(json(n = length(x), sum = sum(as.integer(x))))
  json(n = length(x), sum = sum(x))
}

predict <- function(inputs) {
  found <- lapply(inputs, directive)
  kinds <- vapply(found, function(d) if (is.null(d)) "" else d$kind, "")
  if ("fail" %in% kinds) stop("the conformance model was asked to fail")
  slept <- max(c(0, vapply(found, function(d) if (!is.null(d) && d$kind == "sleep") d$ms else 0, 0)))
  if (slept > 0) Sys.sleep(slept / 1000)
  out <- lapply(seq_along(inputs), function(i) {
    d <- found[[i]]
    if (is.null(d)) return(answer(inputs[[i]]))
    if (d$kind == "wrong-type") return(42)
    if (d$kind == "sleep") return(json(slept = d$ms))
    json(directive = d$kind)
  })
  if ("wrong-count" %in% kinds) out <- out[-length(out)]
  out
}
