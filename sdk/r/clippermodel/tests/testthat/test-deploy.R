# save_model keeping what a top-level function uses, and deploy_r_function's calls of the CLI (here a
# shell that records its arguments; test/r/r-deploy.integration.test.ts deploys through the real system).

test_that("a function defined at top level is saved with the globals it uses, helpers' globals too", {
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  on.exit(rm(list = intersect(c("clipper_test_scale", "clipper_test_helper"), ls(globalenv())), envir = globalenv()), add = TRUE)
  assign("clipper_test_scale", 3, envir = globalenv())
  helper <- function(x) x * clipper_test_scale
  environment(helper) <- globalenv()
  assign("clipper_test_helper", helper, envir = globalenv())
  predict <- function(inputs) vapply(inputs, function(x) format(clipper_test_helper(sum(x))), "")
  environment(predict) <- globalenv()
  save_model(predict, path)
  rm("clipper_test_scale", "clipper_test_helper", envir = globalenv())
  loaded <- load_model(path)
  expect_equal(loaded(list(c(1, 2), 5)), c("9", "15"))
})

test_that("a closure keeps its own environment", {
  path <- tempfile(fileext = ".rds")
  on.exit(unlink(path), add = TRUE)
  make <- function(offset) function(inputs) vapply(inputs, function(x) format(sum(x) + offset), "")
  save_model(make(10), path)
  expect_equal(load_model(path)(list(1)), "11")
})

# A CLI that records each call's arguments, one per line after a "--" line, and copies the .rds it
# is given (the argument after --r) to `saved`.
recording_cli <- function(dir) {
  calls <- file.path(dir, "calls")
  saved <- file.path(dir, "saved.rds")
  script <- sprintf(
    'echo -- >> %s; printf "%%s\\n" "$@" >> %s; while [ $# -gt 0 ]; do if [ "$1" = --r ]; then cp "$2" %s; fi; shift; done; echo done',
    shQuote(calls), shQuote(calls), shQuote(saved)
  )
  list(command = c("sh", "-c", script, "clipper"), calls = calls, saved = saved)
}

test_that("deploy_r_function saves the function with its packages and deploys it, then links the app", {
  dir <- tempfile()
  dir.create(dir)
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  cli <- recording_cli(dir)
  predict <- function(inputs) vapply(inputs, function(x) toupper(x), "")
  result <- deploy_r_function("shout", 2, "strings", predict,
    packages = c("stats"), clipper = cli$command, app = "loud",
    replicas = 2, timeout_seconds = 30, cli_options = c("--cluster", "blue")
  )
  calls <- split(readLines(cli$calls), cumsum(readLines(cli$calls) == "--"))
  deploy <- calls[[1]][-1]
  expect_equal(deploy[1:8], c("model", "deploy", "shout", "--version", "2", "--input-type", "strings", "--r"))
  expect_equal(deploy[-(1:9)], c("--replicas", "2", "--timeout", "30", "--cluster", "blue"))
  expect_equal(calls[[2]][-1], c("link", "loud", "shout", "--cluster", "blue"))
  saved <- readRDS(cli$saved)
  expect_equal(saved$packages, "stats")
  expect_equal(load_model(cli$saved)(list("a", "b")), c("A", "B"))
  expect_equal(result$output, c("done", "done"))
  expect_false(file.exists(deploy[[9]]))
})

test_that("bad arguments are refused before the CLI runs, and a failing CLI is an error with its message", {
  predict <- function(inputs) "x"
  expect_error(deploy_r_function("m", 1, "tensors", predict), "input_type must be one of bytes, ints, floats, doubles, strings")
  expect_error(deploy_r_function("", 1, "doubles", predict), "name must be one non-empty string")
  expect_error(deploy_r_function("m", 1, "doubles", "predict"), "predict must be a function")
  expect_error(deploy_r_function("m", 1, "doubles", predict, replicas = 0, clipper = "true"), "replicas must be a whole number >= 1")
  failing <- c("sh", "-c", "echo 'model m:1 exists' >&2; exit 3", "clipper")
  expect_error(deploy_r_function("m", 1, "doubles", predict, clipper = failing), "clipper model deploy exited with status 3: model m:1 exists")
  expect_error(deploy_r_function("m", 1, "doubles", predict, clipper = "/no/such/clipper"), "clipper model deploy exited with status 127")
})
