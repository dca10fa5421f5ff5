# The httpuv application called as httpuv calls it: a Rook request environment, a response list.
request <- function(path, body = raw(0), content_type = "application/proto", method = "POST", headers = list()) {
  env <- new.env()
  env$REQUEST_METHOD <- method
  env$PATH_INFO <- path
  env$HTTP_CONTENT_TYPE <- content_type
  for (name in names(headers)) assign(name, headers[[name]], envir = env)
  env$rook.input <- list(read = function() body)
  env
}

sum_model <- function(inputs) vapply(inputs, function(x) as.character(sum(x)), "")
app <- model_app(sum_model, "doubles", name = "sum", version = "3")

predict_body <- function(values) {
  req <- RProtoBuf::new(RProtoBuf::P("clipper.model.v1.PredictRequest"), batch_id = 7)
  req$inputs <- pack_inputs(values, "doubles")
  RProtoBuf::serialize(req, NULL)
}

error_of <- function(response) jsonlite::fromJSON(response$body)

test_that("Predict answers one output per input", {
  res <- app$call(request("/clipper.model.v1.ModelService/Predict", predict_body(list(c(1, 2), c(3, 4)))))
  expect_equal(res$status, 200L)
  out <- RProtoBuf::read(RProtoBuf::P("clipper.model.v1.PredictResponse"), res$body)
  expect_equal(vapply(out$outputs, function(o) o$value, ""), c("3", "7"))
})

test_that("malformed bytes, a wrong content type, a wrong method and an unknown procedure are refused by name", {
  garbage <- app$call(request("/clipper.model.v1.ModelService/Predict", charToRaw("garbage")))
  expect_equal(garbage$status, 400L)
  expect_equal(error_of(garbage)$code, "invalid_argument")
  expect_match(error_of(garbage)$message, "invalid wire type 7")
  truncated <- app$call(request("/clipper.model.v1.ModelService/Predict", as.raw(c(0x0a, 0x10, 0x01))))
  expect_match(error_of(truncated)$message, "truncated field 1")
  expect_equal(app$call(request("/clipper.model.v1.ModelService/Predict", content_type = "application/json"))$status, 415L)
  expect_equal(app$call(request("/clipper.model.v1.ModelService/Predict", method = "GET"))$status, 405L)
  unknown <- app$call(request("/clipper.model.v1.ModelService/Train"))
  expect_equal(unknown$status, 501L)
  expect_equal(error_of(unknown)$code, "unimplemented")
  stream <- app$call(request("/clipper.model.v1.ModelService/PredictStream"))
  expect_match(error_of(stream)$message, "PredictStream needs HTTP/2")
})

test_that("a model that raises answers an error per input, and the app goes on", {
  failing <- model_app(function(inputs) stop("boom"), "doubles")
  res <- failing$call(request("/clipper.model.v1.ModelService/Predict", predict_body(list(1, 2))))
  out <- RProtoBuf::read(RProtoBuf::P("clipper.model.v1.PredictResponse"), res$body)
  expect_equal(vapply(out$outputs, function(o) o$error, ""), rep("model raised an error: boom", 2))
})

test_that("health knows its services; metadata names the model", {
  check <- function(service) {
    body <- RProtoBuf::serialize(RProtoBuf::new(RProtoBuf::P("grpc.health.v1.HealthCheckRequest"), service = service), NULL)
    app$call(request("/grpc.health.v1.Health/Check", body))
  }
  ok <- RProtoBuf::read(RProtoBuf::P("grpc.health.v1.HealthCheckResponse"), check("")$body)
  expect_equal(ok$status, 1)
  expect_equal(error_of(check("no.such.Service"))$code, "not_found")
  app$state$serving <- FALSE
  stopping <- RProtoBuf::read(RProtoBuf::P("grpc.health.v1.HealthCheckResponse"), check("clipper.model.v1.ModelService")$body)
  expect_equal(stopping$status, 2)
  app$state$serving <- TRUE
  meta <- RProtoBuf::read(RProtoBuf::P("clipper.model.v1.GetMetadataResponse"), app$call(request("/clipper.model.v1.ModelService/GetMetadata"))$body)
  expect_equal(c(meta$model_name, meta$model_version), c("sum", "3"))
  expect_equal(meta$input_type, 4)
})

test_that("an over-long body is refused before it is read; a bad timeout header is invalid_argument", {
  small <- model_app(sum_model, "doubles", max_message_bytes = 10)
  early <- small$onHeaders(request("/clipper.model.v1.ModelService/Predict", headers = list(HTTP_CONTENT_LENGTH = "1000")))
  expect_equal(early$status, 429L)
  late <- small$call(request("/clipper.model.v1.ModelService/Predict", predict_body(list(c(1, 2, 3)))))
  expect_equal(error_of(late)$code, "resource_exhausted")
  bad <- app$call(request("/clipper.model.v1.ModelService/Predict", predict_body(list(1)), headers = list(HTTP_CONNECT_TIMEOUT_MS = "soon")))
  expect_match(error_of(bad)$message, "connect-timeout-ms")
})

test_that("a string holding NUL is an error for that input alone", {
  # PredictRequest{inputs: Inputs{type: STRINGS, strings: ["a\\0b", "ok"]}} written by hand.
  inner <- as.raw(c(0x08, 0x05, 0x3a, 0x03, 0x61, 0x00, 0x62, 0x3a, 0x02, 0x6f, 0x6b))
  body <- c(as.raw(c(0x0a, length(inner))), inner)
  echo <- model_app(function(inputs) unlist(inputs), "strings")
  out <- RProtoBuf::read(RProtoBuf::P("clipper.model.v1.PredictResponse"), echo$call(request("/clipper.model.v1.ModelService/Predict", body))$body)
  expect_match(out$outputs[[1]]$error, "input 0 holds a NUL character")
  expect_equal(out$outputs[[2]]$value, "ok")
})

test_that("save_model and load_model keep the function and name a missing package", {
  path <- tempfile(fileext = ".rds")
  save_model(sum_model, path, packages = "jsonlite")
  expect_equal(load_model(path)(list(c(1, 2))), "3")
  save_model(sum_model, path, packages = "no.such.package")
  expect_error(load_model(path), "needs the R package no.such.package")
})
