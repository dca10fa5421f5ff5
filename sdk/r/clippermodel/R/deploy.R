#' Deploys `predict` as the model name:version, as Clipper's R deployer did:
#' the function is saved with its package list (save_model) and deployed with
#' Clipper's CLI (`clipper model deploy NAME --r FILE`), which uploads it to
#' the container-manager and waits until its replicas are ready; with `app`,
#' the application is then linked to the model (`clipper link APP NAME`).
#'
#' `clipper` is the CLI command: its program, then any leading arguments
#' (c("node", "/path/to/cli/clipper.mjs") for a checkout). `cli_options` go to
#' every CLI call: the system's addresses (c("--registry", "HOST:PORT",
#' "--container-manager", "HOST:PORT")), `--cluster NAME`, TLS files.
#' A failed deploy or link is an error carrying the CLI's message. Returns,
#' invisibly, the model's name and version and what the CLI printed.
deploy_r_function <- function(name, version, input_type, predict, packages = character(),
                              clipper = Sys.getenv("CLIPPER_CLI", "clipper"), app = NULL, replicas = 1,
                              batch_size = NULL, set_current = FALSE, timeout_seconds = NULL,
                              cli_options = character()) {
  single_string <- function(value, what) {
    if (!is.character(value) || length(value) != 1 || is.na(value) || !nzchar(value)) stop(sprintf("%s must be one non-empty string", what), call. = FALSE)
  }
  single_string(name, "name")
  version <- as.character(version)
  single_string(version, "version")
  input_type <- input_type_name(input_type_code(input_type))
  if (!is.function(predict)) stop("predict must be a function(inputs) returning one string per input", call. = FALSE)
  if (!is.null(app)) single_string(app, "app")
  if (!is.character(clipper) || length(clipper) < 1 || !nzchar(clipper[[1]])) stop("clipper must name the CLI: its program, then any leading arguments", call. = FALSE)
  whole_number <- function(value, what, least) {
    if (!is.numeric(value) || length(value) != 1 || is.na(value) || value != round(value) || value < least) stop(sprintf("%s must be a whole number >= %d", what, least), call. = FALSE)
    format(value, scientific = FALSE)
  }

  rds <- tempfile("clipper-r-function-", fileext = ".rds")
  on.exit(unlink(rds), add = TRUE)
  save_model(predict, rds, packages = packages)
  deploy_args <- c(
    "model", "deploy", name, "--version", version, "--input-type", input_type, "--r", rds,
    "--replicas", whole_number(replicas, "replicas", 1),
    if (!is.null(batch_size)) c("--batch-size", whole_number(batch_size, "batch_size", 0)),
    if (isTRUE(set_current)) "--set-current",
    if (!is.null(timeout_seconds)) c("--timeout", whole_number(timeout_seconds, "timeout_seconds", 1))
  )
  # The CLI bounds its own wait for readiness; this bound is for a CLI that never answers.
  limit <- (if (is.null(timeout_seconds)) 300 else timeout_seconds) + 60
  deployed <- run_cli(clipper, c(deploy_args, cli_options), limit)
  output <- deployed
  if (!is.null(app)) output <- c(output, run_cli(clipper, c("link", app, name, cli_options), 60))
  invisible(list(name = name, version = version, output = output))
}

# Runs the CLI; its standard output's lines, or an error with what it wrote to standard error.
run_cli <- function(clipper, args, timeout_seconds) {
  out <- tempfile("clipper-cli-out-")
  err <- tempfile("clipper-cli-err-")
  on.exit(unlink(c(out, err)), add = TRUE)
  # system2 quotes the command itself, not its arguments.
  status <- suppressWarnings(system2(clipper[[1]], shQuote(c(clipper[-1], args)), stdout = out, stderr = err, timeout = timeout_seconds))
  read <- function(path) if (file.exists(path)) readLines(path, warn = FALSE) else character()
  if (!identical(as.integer(status), 0L)) {
    why <- if (identical(as.integer(status), 124L)) sprintf("did not finish within %.0f s", timeout_seconds) else sprintf("exited with status %s", status)
    detail <- paste(c(read(err), read(out)), collapse = "\n")
    stop(sprintf("clipper %s %s: %s", paste(utils::head(args, 2), collapse = " "), why, detail), call. = FALSE)
  }
  read(out)
}
