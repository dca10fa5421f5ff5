# Input types as the contract numbers them (clipper.common.v1.InputType).
INPUT_TYPES <- c(bytes = 1L, ints = 2L, floats = 3L, doubles = 4L, strings = 5L)
NUMERIC_FIELDS <- c("2" = "ints", "3" = "floats", "4" = "doubles")

#' The contract's number for an input type given by name ("doubles") or number (4).
input_type_code <- function(input_type) {
  if (is.character(input_type) && length(input_type) == 1 && input_type %in% names(INPUT_TYPES)) {
    return(INPUT_TYPES[[input_type]])
  }
  if (is.numeric(input_type) && length(input_type) == 1 && input_type %in% INPUT_TYPES) return(as.integer(input_type))
  stop(sprintf(
    "input_type must be one of %s, got %s",
    paste(names(INPUT_TYPES), collapse = ", "), paste(deparse(input_type), collapse = "")
  ), call. = FALSE)
}

input_type_name <- function(code) {
  name <- names(INPUT_TYPES)[match(code, INPUT_TYPES)]
  if (is.na(name)) sprintf("unspecified (%s)", code) else name
}

#' One element per input: a numeric (or integer) vector per input for the
#' numeric types, a string per input for strings, a raw vector per input for
#' bytes. A batch of the wrong type or with inconsistent lengths is an
#' invalid_argument error.
unpack_inputs <- function(inputs, expected_type) {
  if (inputs$type != expected_type) {
    stop(rpc_error("invalid_argument", sprintf(
      "inputs.type is %s, this model takes %s", input_type_name(inputs$type), input_type_name(expected_type)
    )))
  }
  field <- NUMERIC_FIELDS[as.character(expected_type)]
  if (!is.na(field)) {
    values <- inputs[[field]]
    if (field == "ints") {
      # R's integer type reserves -2^31 as NA, and RProtoBuf reads that value as NA (protobuf has no NA):
      # ints reach the model as doubles, every int32 exact.
      values <- as.numeric(values)
      values[is.na(values)] <- -2147483648
    }
    lengths <- inputs$lengths
    if (sum(lengths) != length(values)) {
      stop(rpc_error("invalid_argument", sprintf(
        "inputs.lengths sum to %.0f but inputs.%s has %d values", sum(lengths), field, length(values)
      )))
    }
    if (length(lengths) == 0) return(list())
    owner <- factor(rep.int(seq_along(lengths), lengths), levels = seq_along(lengths))
    return(unname(split(values, owner)))
  }
  if (expected_type == INPUT_TYPES[["strings"]]) return(as.list(inputs$strings))
  if (expected_type == INPUT_TYPES[["bytes"]]) {
    bytes <- inputs$bytes
    return(if (is.raw(bytes)) list(bytes) else as.list(bytes))
  }
  stop(rpc_error("invalid_argument", sprintf("unsupported input type %s", input_type_name(expected_type))))
}

#' The inverse of unpack_inputs (for tests and clients): a clipper.common.v1.Inputs message.
pack_inputs <- function(values, input_type) {
  code <- input_type_code(input_type)
  msg <- RProtoBuf::new(message_type("clipper.common.v1.Inputs"), type = code)
  field <- NUMERIC_FIELDS[as.character(code)]
  if (!is.na(field)) {
    msg$lengths <- vapply(values, length, numeric(1))
    msg[[field]] <- unlist(values, use.names = FALSE)
  } else if (code == INPUT_TYPES[["strings"]]) {
    msg$strings <- as.character(unlist(values))
  } else {
    msg$bytes <- values
  }
  msg
}
