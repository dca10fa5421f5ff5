MODEL_SERVICE <- "/clipper.model.v1.ModelService/"
HEALTH_CHECK <- "/grpc.health.v1.Health/Check"
PROTO_CONTENT_TYPE <- "application/proto"

#' The httpuv application serving `predict` as clipper.model.v1.ModelService
#' over the Connect protocol's unary calls (POST, application/proto), plus
#' grpc.health.v1.Health/Check. Pure request -> response: no socket of its own.
model_app <- function(predict, input_type, name = "model", version = "1", max_message_bytes = 64 * 1024^2) {
  if (!is.function(predict)) stop("predict must be a function(inputs) returning one string per input", call. = FALSE)
  code <- input_type_code(input_type)
  # serving: FALSE once stopping, so that health says NOT_SERVING while the last batches finish.
  meta <- list(name = name, version = version, input_type = code, state = new.env(), metrics = model_metrics(name, version))
  meta$state$serving <- TRUE
  list(
    state = meta$state,
    metrics = meta$metrics,
    # A body far over the limit is refused before it is read. httpuv then closes the connection, and a
    # client still writing may lose the answer to the reset, so one up to 4x the limit is read first and
    # refused after (below), cleanly: memory stays bounded by that.
    onHeaders = function(req) {
      declared <- suppressWarnings(as.numeric(req$HTTP_CONTENT_LENGTH))
      if (length(declared) == 1 && !is.na(declared) && declared > 4 * max_message_bytes) {
        return(error_response("resource_exhausted", sprintf(
          "the request is %.0f bytes; this model container takes at most %.0f", declared, max_message_bytes
        )))
      }
      NULL
    },
    call = function(req) answer(req, predict, meta, max_message_bytes)
  )
}

answer <- function(req, predict, meta, max_message_bytes) {
  started <- Sys.time()
  tryCatch(
    {
      path <- req$PATH_INFO
      procedure <- if (startsWith(path, MODEL_SERVICE)) substring(path, nchar(MODEL_SERVICE) + 1) else path
      known <- c("Predict", "GetMetadata", "CheckReadiness", "PredictStream", HEALTH_CHECK)
      if (!(procedure %in% known)) stop(rpc_error("unimplemented", sprintf("no procedure %s here", path)))
      if (req$REQUEST_METHOD != "POST") {
        return(list(status = 405L, headers = list(Allow = "POST", "Content-Type" = "text/plain"), body = "POST only"))
      }
      content_type <- sub(";.*$", "", tolower(req$HTTP_CONTENT_TYPE %||% ""))
      if (content_type != PROTO_CONTENT_TYPE) {
        return(list(
          status = 415L,
          headers = list("Accept-Post" = PROTO_CONTENT_TYPE, "Content-Type" = "text/plain"),
          body = sprintf("content-type %s: this container speaks the Connect protocol with application/proto", content_type)
        ))
      }
      if (procedure == "PredictStream") {
        stop(rpc_error("unimplemented", "PredictStream needs HTTP/2 bidirectional streams; this R container serves unary Predict over the Connect protocol"))
      }
      timeout_ms <- parse_timeout(req$HTTP_CONNECT_TIMEOUT_MS)
      body <- req$rook.input$read()
      if (length(body) > max_message_bytes) {
        stop(rpc_error("resource_exhausted", sprintf("the request is %d bytes; this model container takes at most %.0f", length(body), max_message_bytes)))
      }
      reply <- switch(procedure,
        Predict = predict_batch(body, predict, meta$input_type, meta$metrics),
        GetMetadata = RProtoBuf::new(message_type("clipper.model.v1.GetMetadataResponse"),
          model_name = meta$name, model_version = meta$version, input_type = meta$input_type,
          runtime = sprintf("R %s.%s", R.version$major, R.version$minor), max_batch_size = 0
        ),
        CheckReadiness = RProtoBuf::new(message_type("clipper.model.v1.CheckReadinessResponse"),
          ready = meta$state$serving, message = if (meta$state$serving) "" else "stopping"
        ),
        health_check(body, meta$state$serving)
      )
      elapsed_ms <- as.numeric(difftime(Sys.time(), started, units = "secs")) * 1000
      if (!is.na(timeout_ms) && elapsed_ms > timeout_ms) {
        stop(rpc_error("deadline_exceeded", sprintf("answered after %.0f ms; the caller's deadline was %.0f ms", elapsed_ms, timeout_ms)))
      }
      bytes <- if (is.raw(reply)) reply else RProtoBuf::serialize(reply, NULL)
      list(status = 200L, headers = list("Content-Type" = PROTO_CONTENT_TYPE), body = bytes)
    },
    clipper_rpc_error = function(e) error_response(e$code, conditionMessage(e)),
    error = function(e) error_response("internal", sprintf("model container error: %s", conditionMessage(e)))
  )
}

`%||%` <- function(a, b) if (is.null(a)) b else a

parse_timeout <- function(raw) {
  if (is.null(raw) || !nzchar(raw)) return(NA_real_)
  if (!grepl("^[0-9]{1,10}$", raw)) stop(rpc_error("invalid_argument", sprintf("connect-timeout-ms must be 1 to 10 digits, got %s", raw)))
  as.numeric(raw)
}

# The PredictResponse's bytes for a batch, recorded in `metrics` however it ends (an R error
# escaping here is answered as invalid input: what is left to fail is reading the request).
predict_batch <- function(body, predict, input_type, metrics) {
  started <- proc.time()[["elapsed"]]
  outcome <- "invalid_input"
  batch_size <- NA_integer_
  output_errors <- 0
  on.exit(observe_batch(metrics, outcome, proc.time()[["elapsed"]] - started, batch_size, output_errors))
  framing <- check_predict_request(body)
  if (!is.null(framing$problem)) stop(rpc_error("invalid_argument", sprintf("the body is not a clipper.model.v1.PredictRequest: %s", framing$problem)))
  request <- RProtoBuf::read(message_type("clipper.model.v1.PredictRequest"), body)
  inputs <- unpack_inputs(request$inputs, input_type)
  batch_size <- length(inputs)
  outcome <- "ok"
  if (length(inputs) == 0) return(raw(0))
  # An R string cannot hold a NUL: such inputs are answered with an error, the others go to the model.
  refused <- framing$nul_strings
  to_model <- setdiff(seq_along(inputs), refused)
  filled <- list(value = rep(NA_character_, length(inputs)), error = rep(NA_character_, length(inputs)), first_error = NULL)
  if (length(to_model) > 0) {
    ran <- run_model(predict, inputs[to_model])
    filled$value[to_model] <- ran$value
    filled$error[to_model] <- ran$error
    filled$first_error <- ran$first_error
    if (ran$raised) outcome <- "model_error"
  }
  filled$error[refused] <- sprintf("input %d holds a NUL character, which an R string cannot", refused - 1)
  output_errors <- sum(!is.na(filled$error))
  if (!is.null(filled$first_error)) message(sprintf("batch %s: %s", format(request$batch_id), filled$first_error))
  encode_outputs(filled)
}

run_model <- function(predict, inputs) {
  result <- tryCatch(predict(inputs), error = function(e) structure(conditionMessage(e), class = "model_failure"))
  if (!inherits(result, "model_failure")) return(c(fill_outputs(result, length(inputs)), raised = FALSE))
  message <- sprintf("model raised an error: %s", unclass(result))
  list(value = rep(NA_character_, length(inputs)), error = rep(message, length(inputs)), first_error = message, raised = TRUE)
}

#' Serves `predict` on host:port until `stop_file` exists or an interrupt
#' (Ctrl-C) comes, then answers what it has received and returns. Blocks.
#' With `metrics_port`, Prometheus text is served at
#' http://host:metrics_port/metrics by the same loop.
serve_model <- function(predict, input_type, name = "model", version = "1", host = "127.0.0.1", port = 7000,
                        max_message_bytes = 64 * 1024^2, drain_ms = 4000, stop_file = Sys.getenv("CLIPPER_STOP_FILE"),
                        metrics_port = NULL) {
  app <- model_app(predict, input_type, name = name, version = version, max_message_bytes = max_message_bytes)
  # The metrics port opens first: the model port opening is what says "loaded", and a scrape may follow at once.
  metrics_note <- ""
  if (!is.null(metrics_port)) {
    metrics_server <- httpuv::startServer(host, metrics_port, metrics_app(app$metrics))
    on.exit(httpuv::stopServer(metrics_server), add = TRUE)
    metrics_note <- sprintf("; metrics on %s:%d", host, metrics_port)
  }
  # A stop is asked for by creating `stop_file` (the runner script does on SIGTERM: R has no SIGTERM
  # handler, and its interrupts reach into a running batch) or by an interrupt (Ctrl-C in a session).
  # Both are taken between batches.
  handled <- 0
  last_request <- Sys.time()
  counting <- app$call
  app$call <- function(req) {
    handled <<- handled + 1
    on.exit(last_request <<- Sys.time())
    counting(req)
  }
  server <- httpuv::startServer(host, port, app)
  on.exit(httpuv::stopServer(server), add = TRUE)
  message(sprintf("clippermodel: serving %s:%s (%s) over the Connect protocol on %s:%d%s", name, version, input_type_name(input_type_code(input_type)), host, port, metrics_note))
  stop_asked <- function() nzchar(stop_file) && file.exists(stop_file)
  interrupted <- FALSE
  while (!interrupted && !stop_asked()) {
    interrupted <- tryCatch(
      {
        httpuv::service(100)
        FALSE
      },
      interrupt = function(e) TRUE
    )
  }
  app$state$serving <- FALSE
  message(sprintf("clippermodel: stopping after %.0f requests; finishing the ones received", handled))
  # Answers are written and requests already received answered (health now NOT_SERVING); the server
  # stops once nothing was answered for 300 ms, or after drain_ms.
  stopped_at <- Sys.time()
  deadline <- stopped_at + drain_ms / 1000
  quiet_since <- function() max(stopped_at, last_request)
  while (Sys.time() < deadline && difftime(Sys.time(), quiet_since(), units = "secs") < 0.3) {
    tryCatch(httpuv::service(20), interrupt = function(e) NULL)
  }
  invisible(NULL)
}

HEALTH_SERVICES <- c("", "clipper.model.v1.ModelService")

health_check <- function(body, serving) {
  if (!is.character(delimited_fields(body))) {
    service <- RProtoBuf::read(message_type("grpc.health.v1.HealthCheckRequest"), body)$service
  } else {
    stop(rpc_error("invalid_argument", "the body is not a grpc.health.v1.HealthCheckRequest"))
  }
  if (!(service %in% HEALTH_SERVICES)) stop(rpc_error("not_found", sprintf("no service %s here", service)))
  RProtoBuf::new(message_type("grpc.health.v1.HealthCheckResponse"), status = if (serving) 1 else 2)
}
