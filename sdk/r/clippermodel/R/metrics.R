# A model container's Prometheus metrics: the series the Python runtime's
# registry has (clipper_runtime/observability.py, docs/metrics.md), the same
# names, labels and buckets, plus what /proc tells of this process. Served as
# text (exposition format 0.0.4) on CLIPPER_METRICS_PORT by serve_model.

BATCH_BUCKETS <- c(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS <- c(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_OUTCOMES <- c("ok", "model_error", "invalid_input")
METRICS_CONTENT_TYPE <- "text/plain; version=0.0.4; charset=utf-8"

new_histogram <- function(bounds) {
  # counts[i]: observations <= bounds[i] (cumulative, as exposed); the +Inf bucket is `count`.
  list(bounds = bounds, counts = numeric(length(bounds)), sum = 0, count = 0)
}

observe_histogram <- function(histogram, value) {
  histogram$counts <- histogram$counts + (value <= histogram$bounds)
  histogram$sum <- histogram$sum + value
  histogram$count <- histogram$count + 1
  histogram
}

#' The metrics of one model container: an environment updated in place by
#' observe_batch and read by metrics_text. Every series exists from the start,
#' at 0, so that a rate over the first batches is right.
model_metrics <- function(name, version) {
  metrics <- new.env(parent = emptyenv())
  metrics$name <- as.character(name)
  metrics$version <- as.character(version)
  metrics$requests <- vapply(BATCH_OUTCOMES, function(o) 0, 0)
  metrics$inputs <- c(ok = 0, error = 0)
  metrics$batch_size <- new_histogram(BATCH_BUCKETS)
  metrics$predict_seconds <- new_histogram(LATENCY_BUCKETS)
  metrics
}

#' Records one Predict call as the Python runtime does: its outcome ("ok",
#' "model_error" when predict raised, "invalid_input" when the batch could not
#' be read), and for a batch that was read its size and how many of its
#' outputs are errors; the time to answer it in every case.
observe_batch <- function(metrics, outcome, seconds, batch_size = NA_integer_, output_errors = 0) {
  if (!(outcome %in% BATCH_OUTCOMES)) stop(sprintf("unknown batch outcome %s", outcome), call. = FALSE)
  metrics$requests[[outcome]] <- metrics$requests[[outcome]] + 1
  if (outcome != "invalid_input") {
    metrics$batch_size <- observe_histogram(metrics$batch_size, batch_size)
    metrics$inputs[["ok"]] <- metrics$inputs[["ok"]] + batch_size - output_errors
    metrics$inputs[["error"]] <- metrics$inputs[["error"]] + output_errors
  }
  metrics$predict_seconds <- observe_histogram(metrics$predict_seconds, seconds)
  invisible(metrics)
}

# A label value escaped as the exposition format wants: backslash, double quote, newline.
escape_label <- function(value) gsub("\n", "\\n", gsub("\"", "\\\"", gsub("\\", "\\\\", value, fixed = TRUE), fixed = TRUE), fixed = TRUE)

labels_text <- function(labels) {
  if (length(labels) == 0) return("")
  sprintf("{%s}", paste0(names(labels), "=\"", vapply(labels, escape_label, ""), "\"", collapse = ","))
}

# A sample value: integers without a fraction, others with 15 significant digits (Go's ParseFloat,
# which Prometheus uses, reads both).
number_text <- function(x) {
  if (is.infinite(x)) return(if (x > 0) "+Inf" else "-Inf")
  if (x == round(x) && abs(x) < 1e15) sprintf("%.0f", x) else sprintf("%.15g", x)
}

# A bucket bound as Python's prometheus-client writes it ("1.0", "0.0005"), so that series of both
# runtimes share their le labels.
bound_text <- function(bound) {
  text <- format(bound, scientific = FALSE, drop0trailing = TRUE, trim = TRUE)
  ifelse(grepl(".", text, fixed = TRUE), text, paste0(text, ".0"))
}

family_text <- function(name, type, help, samples) {
  c(sprintf("# HELP %s %s", name, help), sprintf("# TYPE %s %s", name, type), samples)
}

sample_text <- function(name, labels, value) paste0(name, labels_text(labels), " ", number_text(value))

histogram_samples <- function(name, labels, histogram) {
  buckets <- vapply(seq_along(histogram$bounds), function(i) {
    sample_text(paste0(name, "_bucket"), c(labels, le = bound_text(histogram$bounds[[i]])), histogram$counts[[i]])
  }, "")
  c(
    buckets,
    sample_text(paste0(name, "_bucket"), c(labels, le = "+Inf"), histogram$count),
    sample_text(paste0(name, "_count"), labels, histogram$count),
    sample_text(paste0(name, "_sum"), labels, histogram$sum)
  )
}

# This process's CPU time, resident memory and open descriptors, as Prometheus's client libraries name
# them: proc.time() for the CPU, /proc (Linux) for the others; on another system those two are left out.
process_lines <- function() {
  times <- proc.time()
  cpu <- sum(times[c("user.self", "sys.self")], na.rm = TRUE)
  lines <- family_text("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", sample_text("process_cpu_seconds_total", character(), cpu))
  status <- tryCatch(readLines("/proc/self/status", warn = FALSE), error = function(e) character())
  rss <- regmatches(status, regexec("^VmRSS:\\s+([0-9]+) kB", status))
  rss <- Filter(function(m) length(m) == 2, rss)
  if (length(rss) == 1) {
    lines <- c(lines, family_text("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", sample_text("process_resident_memory_bytes", character(), as.numeric(rss[[1]][[2]]) * 1024)))
  }
  if (dir.exists("/proc/self/fd")) {
    lines <- c(lines, family_text("process_open_fds", "gauge", "Number of open file descriptors.", sample_text("process_open_fds", character(), length(list.files("/proc/self/fd")))))
  }
  lines
}

#' The metrics as Prometheus text (exposition format 0.0.4), ending in a newline.
metrics_text <- function(metrics) {
  model <- c(model = metrics$name, version = metrics$version)
  by_outcome <- function(name, counts) vapply(names(counts), function(o) sample_text(name, c(model, outcome = o), counts[[o]]), "", USE.NAMES = FALSE)
  lines <- c(
    family_text("clipper_model_requests_total", "counter", "Batches (Predict calls), by outcome (ok, model_error, invalid_input).", by_outcome("clipper_model_requests_total", metrics$requests)),
    family_text("clipper_model_inputs_total", "counter", "Inputs predicted, by outcome of their output (ok, error).", by_outcome("clipper_model_inputs_total", metrics$inputs)),
    family_text("clipper_model_batch_size", "histogram", "Inputs per batch.", histogram_samples("clipper_model_batch_size", model, metrics$batch_size)),
    family_text(
      "clipper_model_predict_duration_seconds", "histogram", "Time to answer one batch (unpacking, the model's predict, packing).",
      histogram_samples("clipper_model_predict_duration_seconds", model, metrics$predict_seconds)
    ),
    process_lines()
  )
  paste0(paste(lines, collapse = "\n"), "\n")
}

#' The httpuv application serving `metrics` at GET /metrics (HEAD too); any other path is 404.
metrics_app <- function(metrics) {
  list(call = function(req) {
    if (req$PATH_INFO != "/metrics") {
      return(list(status = 404L, headers = list("Content-Type" = "text/plain"), body = "metrics are at /metrics\n"))
    }
    if (!(req$REQUEST_METHOD %in% c("GET", "HEAD"))) {
      return(list(status = 405L, headers = list(Allow = "GET, HEAD", "Content-Type" = "text/plain"), body = "GET /metrics\n"))
    }
    list(status = 200L, headers = list("Content-Type" = METRICS_CONTENT_TYPE), body = if (req$REQUEST_METHOD == "HEAD") "" else metrics_text(metrics))
  })
}
