test_that("numeric batches split by lengths, empty inputs included", {
  inputs <- unpack_inputs(pack_inputs(list(c(1, 2), numeric(0), c(3, 4, 5)), "doubles"), 4L)
  expect_equal(inputs, list(c(1, 2), numeric(0), c(3, 4, 5)))
})

test_that("ints arrive as doubles, -2^31 exact (R's integer NA)", {
  # Inputs{type: INTS, lengths: [3], ints: [2147483647, -2147483648, 1]} written by hand (sint32, zigzag).
  raw <- as.raw(c(0x08, 0x02, 0x12, 0x01, 0x03, 0x1a, 0x0b, 0xfe, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x02))
  parsed <- RProtoBuf::read(RProtoBuf::P("clipper.common.v1.Inputs"), raw)
  expect_equal(unpack_inputs(parsed, 2L), list(c(2147483647, -2147483648, 1)))
})

test_that("strings and bytes are one element per input", {
  expect_equal(unpack_inputs(pack_inputs(list("a", "héllo", ""), "strings"), 5L), list("a", "héllo", ""))
  bytes <- unpack_inputs(pack_inputs(list(as.raw(c(0, 255)), raw(0)), "bytes"), 1L)
  expect_equal(bytes[[1]], as.raw(c(0, 255)))
  expect_equal(length(bytes), 2)
})

test_that("a batch of the wrong type or with lengths that do not add up is invalid_argument", {
  err <- expect_error(unpack_inputs(pack_inputs(list("a"), "strings"), 4L), class = "clipper_rpc_error")
  expect_equal(err$code, "invalid_argument")
  expect_match(conditionMessage(err), "inputs.type is strings, this model takes doubles")
  bad <- RProtoBuf::new(RProtoBuf::P("clipper.common.v1.Inputs"), type = 4L, lengths = c(2, 2), doubles = c(1, 2, 3))
  expect_error(unpack_inputs(bad, 4L), "lengths sum to 4 but inputs.doubles has 3 values")
})

test_that("input types by name or number", {
  expect_equal(input_type_code("strings"), 5L)
  expect_equal(input_type_code(4), 4L)
  expect_error(input_type_code("tensors"), "input_type must be one of")
})
