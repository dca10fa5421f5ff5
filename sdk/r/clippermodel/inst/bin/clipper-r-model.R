#!/usr/bin/env Rscript
# The R model container: `Rscript clipper-r-model.R model.rds` with the
# container-manager's CLIPPER_MODEL_* environment.
status <- tryCatch(
  {
    clippermodel::run_from_env(commandArgs(trailingOnly = TRUE))
    0L
  },
  error = function(e) {
    message("clipper-r-model: ", conditionMessage(e))
    1L
  }
)
quit(save = "no", status = status)
