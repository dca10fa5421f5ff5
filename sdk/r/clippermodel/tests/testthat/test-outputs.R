decode <- function(bytes) {
  msg <- RProtoBuf::read(RProtoBuf::P("clipper.model.v1.PredictResponse"), bytes)
  vapply(msg$outputs, function(o) if (o$has("value")) paste0("value:", o$value) else paste0("error:", o$error), "")
}

test_that("a character vector is one value per input, written as protobuf reads it", {
  filled <- fill_outputs(c("1", "héllo ✓", strrep("x", 300)), 3)
  expect_null(filled$first_error)
  expect_equal(decode(encode_outputs(filled)), c("value:1", "value:héllo ✓", paste0("value:", strrep("x", 300))))
})

test_that("a wrong count or kind makes every input an error; a bad element only its own", {
  expect_equal(decode(encode_outputs(fill_outputs(c("a"), 2))), rep("error:model returned 1 outputs for 2 inputs", 2))
  expect_match(fill_outputs(42, 1)$first_error, "model returned numeric, expected a character vector")
  mixed <- fill_outputs(list("a", 42, NA_character_, c("x", "y")), 4)
  expect_equal(decode(encode_outputs(mixed)), c(
    "value:a", "error:output 1 is numeric of length 1, expected a single string",
    "error:output 2 is NA, expected a single string", "error:output 3 is character of length 2, expected a single string"
  ))
})

test_that("long outputs take multi-byte varints", {
  big <- strrep("y", 20000)
  expect_equal(decode(encode_outputs(fill_outputs(c(big, "z"), 2))), c(paste0("value:", big), "value:z"))
})
