library(testthat)
library(clippermodel)
test_check("clippermodel")
