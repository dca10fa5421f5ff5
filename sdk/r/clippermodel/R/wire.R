# RProtoBuf's read() accepts malformed bytes (a truncated field, an invalid
# wire type) without an error, so a request's framing is checked here first:
# a client's bad bytes must be answered invalid_argument, never read as an
# empty or partial batch. The same walk finds the strings R cannot hold
# (an R string ends at its first NUL byte).

read_varint <- function(bytes, at) {
  value <- 0
  shift <- 0
  repeat {
    if (at > length(bytes)) return(NULL)
    byte <- as.integer(bytes[[at]])
    value <- value + bitwAnd(byte, 127L) * 2^shift
    at <- at + 1
    if (byte < 128L) return(list(value = value, at = at))
    shift <- shift + 7
    if (shift > 63) return(NULL)
  }
}

#' The length-delimited fields of a well-framed message as a data frame
#' (field, from, to: the value's bytes), or a string saying why it is not one.
delimited_fields <- function(bytes) {
  at <- 1
  n <- length(bytes)
  # Grown by doubling: a batch of thousands of strings is thousands of fields.
  found <- 0
  field_of <- numeric(16)
  from <- numeric(16)
  to <- numeric(16)
  while (at <= n) {
    start <- at
    tag <- read_varint(bytes, at)
    if (is.null(tag)) return(sprintf("truncated tag at byte %d", start - 1))
    at <- tag$at
    field <- tag$value %/% 8
    wire <- tag$value %% 8
    if (field == 0) return(sprintf("field number 0 at byte %d", start - 1))
    if (wire == 0) {
      v <- read_varint(bytes, at)
      if (is.null(v)) return(sprintf("truncated varint in field %.0f", field))
      at <- v$at
    } else if (wire == 1 || wire == 5) {
      width <- if (wire == 1) 8 else 4
      if (at + width - 1 > n) return(sprintf("truncated fixed-width field %.0f", field))
      at <- at + width
    } else if (wire == 2) {
      len <- read_varint(bytes, at)
      if (is.null(len) || len$at + len$value - 1 > n) return(sprintf("truncated field %.0f at byte %d", field, start - 1))
      found <- found + 1
      if (found > length(field_of)) {
        length(field_of) <- length(from) <- length(to) <- 2 * found
      }
      field_of[[found]] <- field
      from[[found]] <- len$at
      to[[found]] <- len$at + len$value - 1
      at <- len$at + len$value
    } else {
      return(sprintf("invalid wire type %.0f in field %.0f at byte %d", wire, field, start - 1))
    }
  }
  keep <- seq_len(found)
  data.frame(field = field_of[keep], from = from[keep], to = to[keep])
}

#' Checks a PredictRequest's framing (and that of its Inputs). Returns why it
#' is malformed, or NULL and the positions (1-based) of the strings inputs
#' that hold a NUL byte.
check_predict_request <- function(bytes) {
  top <- delimited_fields(bytes)
  if (is.character(top)) return(list(problem = top))
  nul_strings <- integer()
  for (i in which(top$field == 1)) {
    if (top$to[[i]] < top$from[[i]]) next
    inputs <- bytes[top$from[[i]]:top$to[[i]]]
    inner <- delimited_fields(inputs)
    if (is.character(inner)) return(list(problem = sprintf("in field 1 (inputs): %s", inner)))
    strings <- inner[inner$field == 7, , drop = FALSE]
    for (k in seq_len(nrow(strings))) {
      if (strings$to[[k]] >= strings$from[[k]] && any(inputs[strings$from[[k]]:strings$to[[k]]] == as.raw(0))) nul_strings <- c(nul_strings, k)
    }
  }
  list(problem = NULL, nul_strings = nul_strings)
}
