# The Prometheus text of a model container: its grammar (exposition format 0.0.4), the series and
# labels the Python runtime has, how batches are counted, and the runner serving it on CLIPPER_METRICS_PORT.

# A sample line: name, optional {label="value",...} with escaped values, a number.
SAMPLE_LINE <- '^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\\\n]|\\\\[\\\\"n])*",?)*\\})? (-?[0-9.]+(e[-+]?[0-9]+)?|[+-]Inf|NaN)$'

sample_value <- function(text, series) {
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  hit <- lines[startsWith(lines, paste0(series, " "))]
  if (length(hit) != 1) stop(sprintf("%d lines for %s", length(hit), series))
  as.numeric(sub("^.* ", "", hit))
}

# The batches counted by outcome and the inputs by output, for the model `labels` ('model="m",version="1"').
expect_counts <- function(text, labels, requests, inputs) {
  for (outcome in names(requests)) expect_equal(sample_value(text, sprintf('clipper_model_requests_total{%s,outcome="%s"}', labels, outcome)), requests[[outcome]], label = outcome)
  for (outcome in names(inputs)) expect_equal(sample_value(text, sprintf('clipper_model_inputs_total{%s,outcome="%s"}', labels, outcome)), inputs[[outcome]], label = outcome)
}

test_that("every line is a comment of the format or a sample, and every family is typed before its samples", {
  text <- metrics_text(model_metrics("sum", "3"))
  expect_true(endsWith(text, "\n"))
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  comments <- startsWith(lines, "#")
  expect_true(all(grepl("^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", lines[comments])))
  bad <- lines[!comments & !grepl(SAMPLE_LINE, lines, perl = TRUE)]
  expect_equal(bad, character())
  types <- sub("^# TYPE ([^ ]+) (.*)$", "\\1=\\2", lines[startsWith(lines, "# TYPE")])
  expect_true(all(c(
    "clipper_model_requests_total=counter", "clipper_model_inputs_total=counter", "clipper_model_batch_size=histogram",
    "clipper_model_predict_duration_seconds=histogram", "process_cpu_seconds_total=counter"
  ) %in% types))
  # Each sample comes after its family's TYPE line.
  for (i in which(!comments)) {
    family <- sub("(_bucket|_count|_sum)?(\\{.*)?( .*)$", "", lines[[i]])
    typed <- which(lines == sprintf("# TYPE %s counter", family) | lines == sprintf("# TYPE %s histogram", family) | lines == sprintf("# TYPE %s gauge", family))
    expect_true(length(typed) == 1 && typed < i, label = lines[[i]])
  }
})

test_that("every series starts at 0, with the Python runtime's labels and bucket bounds", {
  text <- metrics_text(model_metrics("sum", "3"))
  expect_counts(text, 'model="sum",version="3"', requests = c(ok = 0, model_error = 0, invalid_input = 0), inputs = c(ok = 0, error = 0))
  expect_equal(sample_value(text, 'clipper_model_batch_size_bucket{model="sum",version="3",le="1.0"}'), 0)
  expect_equal(sample_value(text, 'clipper_model_batch_size_bucket{model="sum",version="3",le="1024.0"}'), 0)
  expect_equal(sample_value(text, 'clipper_model_predict_duration_seconds_bucket{model="sum",version="3",le="0.0005"}'), 0)
  expect_equal(sample_value(text, 'clipper_model_predict_duration_seconds_bucket{model="sum",version="3",le="2.5"}'), 0)
  expect_equal(sample_value(text, 'clipper_model_predict_duration_seconds_count{model="sum",version="3"}'), 0)
  expect_gt(sample_value(text, "process_cpu_seconds_total"), 0)
  expect_gt(sample_value(text, "process_resident_memory_bytes"), 1e6)
  expect_gt(sample_value(text, "process_open_fds"), 2)
})

test_that("batches are counted by outcome, their inputs by output, into cumulative buckets", {
  metrics <- model_metrics("m", "1")
  observe_batch(metrics, "ok", 0.003, batch_size = 3, output_errors = 1)
  observe_batch(metrics, "ok", 0.2, batch_size = 64)
  observe_batch(metrics, "model_error", 0.0001, batch_size = 2, output_errors = 2)
  observe_batch(metrics, "invalid_input", 0.0002)
  text <- metrics_text(metrics)
  value <- function(series) sample_value(text, series)
  expect_counts(text, 'model="m",version="1"', requests = c(ok = 2, model_error = 1, invalid_input = 1), inputs = c(ok = 66, error = 3))
  # An invalid batch has no size: three sizes (3, 64, 2), four durations.
  expect_equal(value('clipper_model_batch_size_bucket{model="m",version="1",le="2.0"}'), 1)
  expect_equal(value('clipper_model_batch_size_bucket{model="m",version="1",le="4.0"}'), 2)
  expect_equal(value('clipper_model_batch_size_bucket{model="m",version="1",le="64.0"}'), 3)
  expect_equal(value('clipper_model_batch_size_bucket{model="m",version="1",le="+Inf"}'), 3)
  expect_equal(value('clipper_model_batch_size_sum{model="m",version="1"}'), 69)
  expect_equal(value('clipper_model_predict_duration_seconds_bucket{model="m",version="1",le="0.0005"}'), 2)
  expect_equal(value('clipper_model_predict_duration_seconds_bucket{model="m",version="1",le="0.005"}'), 3)
  expect_equal(value('clipper_model_predict_duration_seconds_bucket{model="m",version="1",le="0.1"}'), 3)
  expect_equal(value('clipper_model_predict_duration_seconds_bucket{model="m",version="1",le="0.25"}'), 4)
  expect_equal(value('clipper_model_predict_duration_seconds_count{model="m",version="1"}'), 4)
  expect_equal(value('clipper_model_predict_duration_seconds_sum{model="m",version="1"}'), 0.2033)
  expect_error(observe_batch(metrics, "lost", 0), "unknown batch outcome lost")
})

test_that("label values are escaped: backslash, double quote, newline", {
  text <- metrics_text(model_metrics('a"b\\c\nd', "1"))
  expect_match(text, 'clipper_model_requests_total{model="a\\"b\\\\c\\nd",version="1",outcome="ok"} 0', fixed = TRUE)
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  expect_true(all(grepl(SAMPLE_LINE, lines[!startsWith(lines, "#")], perl = TRUE)))
})

test_that("the model app's Predict calls are recorded: ok, model_error, invalid_input, and outputs in error", {
  request <- function(body) {
    env <- new.env()
    env$REQUEST_METHOD <- "POST"
    env$PATH_INFO <- "/clipper.model.v1.ModelService/Predict"
    env$HTTP_CONTENT_TYPE <- "application/proto"
    env$rook.input <- list(read = function() body)
    env
  }
  body <- function(values) {
    req <- RProtoBuf::new(RProtoBuf::P("clipper.model.v1.PredictRequest"), batch_id = 1)
    req$inputs <- pack_inputs(values, "doubles")
    RProtoBuf::serialize(req, NULL)
  }
  # Answers the sum, raises on a negative first value, answers NA (an output error) on a zero one.
  model <- function(inputs) {
    if (inputs[[1]][[1]] < 0) stop("negative")
    vapply(inputs, function(x) if (x[[1]] == 0) NA_character_ else format(sum(x)), "")
  }
  app <- model_app(model, "doubles", name = "m", version = "2")
  app$call(request(body(list(c(1, 2), c(0, 1), 5))))
  app$call(request(body(list(-1, 2))))
  app$call(request(charToRaw("garbage")))
  app$call(request(body(list())))
  text <- metrics_text(app$metrics)
  value <- function(series) sample_value(text, series)
  expect_counts(text, 'model="m",version="2"', requests = c(ok = 2, model_error = 1, invalid_input = 1), inputs = c(ok = 2, error = 3))
  expect_equal(value('clipper_model_batch_size_sum{model="m",version="2"}'), 5)
  expect_equal(value('clipper_model_predict_duration_seconds_count{model="m",version="2"}'), 4)
  # Metadata and health are not batches.
  metadata <- request(raw(0))
  metadata$PATH_INFO <- "/clipper.model.v1.ModelService/GetMetadata"
  app$call(metadata)
  expect_equal(sample_value(metrics_text(app$metrics), 'clipper_model_predict_duration_seconds_count{model="m",version="2"}'), 4)
})

test_that("the runner serves the text on CLIPPER_METRICS_PORT /metrics, and nothing else there", {
  script <- tempfile(fileext = ".R")
  writeLines('predict <- function(inputs) vapply(inputs, function(x) format(sum(x)), "")', script)
  log <- tempfile()
  stop_file <- tempfile()
  on.exit(unlink(c(script, log, stop_file)), add = TRUE)
  port <- httpuv::randomPort()
  metrics_port <- httpuv::randomPort()
  while (metrics_port == port) metrics_port <- httpuv::randomPort()
  env <- c(
    R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep), CLIPPER_MODEL_PORT = port, CLIPPER_METRICS_PORT = metrics_port,
    CLIPPER_INPUT_TYPE = "doubles", CLIPPER_MODEL_NAME = "summer", CLIPPER_MODEL_VERSION = "7", CLIPPER_STOP_FILE = stop_file
  )
  rscript <- file.path(R.home("bin"), "Rscript")
  code <- sprintf("clippermodel::run_from_env('%s')", script)
  system2(rscript, c("-e", shQuote(code)), stdout = log, stderr = log, wait = FALSE, env = paste0(names(env), "=", env))
  on.exit(file.create(stop_file), add = TRUE, after = FALSE)
  fetch <- function(path) {
    connection <- url(sprintf("http://127.0.0.1:%d%s", metrics_port, path))
    on.exit(close(connection))
    paste0(paste(readLines(connection, warn = FALSE), collapse = "\n"), "\n")
  }
  text <- NULL
  deadline <- Sys.time() + 30
  while (is.null(text) && Sys.time() < deadline) {
    text <- tryCatch(suppressWarnings(fetch("/metrics")), error = function(e) NULL)
    if (is.null(text)) Sys.sleep(0.1)
  }
  expect_false(is.null(text), label = paste(readLines(log), collapse = "\n"))
  expect_equal(sample_value(text, 'clipper_model_requests_total{model="summer",version="7",outcome="ok"}'), 0)
  expect_match(text, "# TYPE clipper_model_predict_duration_seconds histogram", fixed = TRUE)
  expect_error(suppressWarnings(fetch("/other")), "404|cannot open")
  file.create(stop_file)
  deadline <- Sys.time() + 10
  while (!any(grepl("stopping after", readLines(log, warn = FALSE))) && Sys.time() < deadline) Sys.sleep(0.1)
  expect_match(paste(readLines(log), collapse = "\n"), sprintf("metrics on 127.0.0.1:%d", metrics_port), fixed = TRUE)
})
