#' One output per input from what predict returned: a character vector (or a
#' list of strings) with one element per input. A result of the wrong length
#' or kind makes every input an error; an element that is not a single string
#' (or is NA) makes that input an error. Returns `value` and `error` (character
#' vectors, one of the two NA at each position) and the first error, if any.
fill_outputs <- function(result, expected) {
  all_errors <- function(message) list(value = rep(NA_character_, expected), error = rep(message, expected), first_error = message)
  if (!(is.character(result) || (is.list(result) && !is.data.frame(result)))) {
    return(all_errors(sprintf("model returned %s, expected a character vector of %d strings", class(result)[[1]], expected)))
  }
  if (length(result) != expected) {
    return(all_errors(sprintf("model returned %d outputs for %d inputs", length(result), expected)))
  }
  if (is.character(result)) {
    value <- unname(result)
    error <- ifelse(is.na(value), sprintf("output %d is NA, expected a string", seq_len(expected) - 1), NA_character_)
  } else {
    good <- vapply(result, function(v) is.character(v) && length(v) == 1 && !is.na(v), logical(1))
    value <- rep(NA_character_, expected)
    value[good] <- unlist(result[good], use.names = FALSE)
    error <- rep(NA_character_, expected)
    for (i in which(!good)) error[[i]] <- sprintf("output %d is %s, expected a single string", i - 1, describe(result[[i]]))
  }
  bad <- which(!is.na(error))
  list(value = value, error = error, first_error = if (length(bad) > 0) error[[bad[[1]]]] else NULL)
}

describe <- function(value) {
  if (is.character(value) && length(value) == 1) return("NA")
  sprintf("%s of length %d", class(value)[[1]], length(value))
}

#' The outputs as one clipper.model.v1.PredictResponse's bytes, written here
#' with vector operations only: RProtoBuf builds one message per output (half a
#' second for a batch of 4096), and so would a loop over the outputs in R.
#' Each output is field 1 (Output) around field 1 (value) or 2 (error).
encode_outputs <- function(filled) {
  n <- length(filled$value)
  if (n == 0) return(raw(0))
  is_value <- !is.na(filled$value)
  text <- enc2utf8(ifelse(is_value, filled$value, filled$error))
  text_len <- nchar(text, type = "bytes")
  text_vl <- varint_lengths(text_len)
  inner_len <- 1 + text_vl + text_len
  inner_vl <- varint_lengths(inner_len)
  head_len <- 1 + inner_vl + 1 + text_vl
  total_len <- head_len + text_len
  start <- cumsum(c(1, total_len))[seq_len(n)]
  out <- raw(sum(total_len))
  out[start] <- as.raw(0x0a)
  out[sequence(inner_vl, start + 1)] <- varints(inner_len)
  out[start + 1 + inner_vl] <- as.raw(ifelse(is_value, 0x0a, 0x12))
  out[sequence(text_vl, start + 2 + inner_vl)] <- varints(text_len)
  if (sum(text_len) > 0) out[sequence(text_len, start + head_len)] <- charToRaw(paste0(text, collapse = ""))
  out
}

varint_lengths <- function(n) 1 + (n >= 2^7) + (n >= 2^14) + (n >= 2^21) + (n >= 2^28)

# The varint encodings of `n`, one after the other.
varints <- function(n) {
  width <- varint_lengths(n)
  groups <- vapply(0:4, function(k) (n %/% 128^k) %% 128, numeric(length(n)))
  groups <- matrix(groups, nrow = length(n))
  more <- outer(width, 0:4, function(w, k) k < w - 1)
  bytes <- groups + 128 * more
  keep <- outer(width, 0:4, function(w, k) k < w)
  as.raw(t(bytes)[t(keep)])
}
