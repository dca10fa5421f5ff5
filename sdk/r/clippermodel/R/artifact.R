#' Saves a predict function for deployment: the function (with its closure),
#' the packages it needs (attached again when it is loaded) and the R version
#' that saved it, in one RDS file.
#' A function defined at top level refers to the global environment, which an
#' RDS holds only by reference: the globals it uses (found by name in its
#' body, and in the bodies of global functions it calls) are saved with it.
save_model <- function(predict, path, packages = character()) {
  if (!is.function(predict)) stop("predict must be a function", call. = FALSE)
  saveRDS(list(predict = with_globals(predict), packages = as.character(packages), r_version = R.version.string), path)
  invisible(path)
}

# `f` with the global objects it names copied into an environment of its own (a child of the
# global environment), when it was defined at top level; other closures carry their environment.
with_globals <- function(f) {
  if (!identical(environment(f), globalenv())) return(f)
  captured <- new.env(parent = globalenv())
  pending <- list(f)
  while (length(pending) > 0) {
    g <- pending[[1]]
    pending <- pending[-1]
    for (name in intersect(all.names(body(g)), ls(globalenv(), all.names = TRUE))) {
      if (exists(name, envir = captured, inherits = FALSE)) next
      value <- get(name, envir = globalenv())
      if (is.function(value) && identical(environment(value), globalenv())) {
        pending <- c(pending, value)
        environment(value) <- captured
      }
      assign(name, value, envir = captured)
    }
  }
  environment(f) <- captured
  f
}

#' The predict function saved by save_model, with its packages attached; a
#' missing package is an error naming it.
load_model <- function(path) {
  saved <- readRDS(path)
  if (!is.list(saved) || !is.function(saved$predict)) stop(sprintf("%s is not a model saved by clippermodel::save_model", path), call. = FALSE)
  for (package in saved$packages) {
    if (!requireNamespace(package, quietly = TRUE)) {
      stop(sprintf("the model needs the R package %s, which is not installed here (saved with %s)", package, saved$r_version), call. = FALSE)
    }
    suppressPackageStartupMessages(library(package, character.only = TRUE))
  }
  saved$predict
}

#' The predict function in an R script: the script is run in an environment
#' of its own and must define `predict`; what it prints while loading goes to
#' the container's log.
load_script <- function(path) {
  env <- new.env(parent = globalenv())
  sys.source(path, envir = env, keep.source = FALSE)
  if (!is.function(env$predict)) stop(sprintf("%s does not define a function predict(inputs)", path), call. = FALSE)
  env$predict
}

#' The container entry point: serves the model at CLIPPER_MODEL_PATH (or the
#' first argument): an RDS from save_model, or an R script defining predict,
#' with the settings the container-manager passes in the environment.
run_from_env <- function(args = character(), env = Sys.getenv()) {
  get <- function(key, default = "") if (key %in% names(env) && nzchar(env[[key]])) env[[key]] else default
  path <- if (length(args) >= 1) args[[1]] else get("CLIPPER_MODEL_PATH")
  if (!nzchar(path)) stop("no model: pass an RDS path or set CLIPPER_MODEL_PATH", call. = FALSE)
  port_of <- function(key, default) {
    port <- suppressWarnings(as.integer(get(key, default)))
    if (is.na(port) || port < 0 || port > 65535) stop(sprintf("%s must be a port number, got %s", key, get(key)), call. = FALSE)
    port
  }
  port <- port_of("CLIPPER_MODEL_PORT", "7000")
  input_type <- get("CLIPPER_INPUT_TYPE")
  if (!nzchar(input_type)) stop("CLIPPER_INPUT_TYPE is not set", call. = FALSE)
  # The container-manager's artifacts have no file extension: it says which kind in CLIPPER_R_MODEL_FORMAT.
  format <- get("CLIPPER_R_MODEL_FORMAT", if (grepl("[.][Rr]$", path)) "script" else "rds")
  if (!(format %in% c("rds", "script"))) stop(sprintf("CLIPPER_R_MODEL_FORMAT must be rds or script, got %s", format), call. = FALSE)
  metrics_port <- if (nzchar(get("CLIPPER_METRICS_PORT"))) port_of("CLIPPER_METRICS_PORT", "") else NULL
  model <- if (format == "script") load_script(path) else load_model(path)
  serve_model(model, input_type,
    name = get("CLIPPER_MODEL_NAME", "model"), version = get("CLIPPER_MODEL_VERSION", "1"),
    host = get("CLIPPER_MODEL_HOST", "127.0.0.1"), port = port, metrics_port = metrics_port
  )
}
