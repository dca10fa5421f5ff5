# A failure answered to the caller with a Connect error code and a message
# naming the problem (never a crash of the container).
rpc_error <- function(code, message) {
  structure(class = c("clipper_rpc_error", "error", "condition"), list(message = message, call = NULL, code = code))
}

# Connect's mapping of its codes to HTTP statuses (connectrpc.com/docs/protocol).
CONNECT_HTTP_STATUS <- c(
  canceled = 499L, unknown = 500L, invalid_argument = 400L, deadline_exceeded = 504L,
  not_found = 404L, already_exists = 409L, permission_denied = 403L, resource_exhausted = 429L,
  failed_precondition = 400L, aborted = 409L, out_of_range = 400L, unimplemented = 501L,
  internal = 500L, unavailable = 503L, data_loss = 500L, unauthenticated = 401L
)

error_response <- function(code, message, headers = list()) {
  body <- jsonlite::toJSON(list(code = code, message = message), auto_unbox = TRUE)
  list(
    status = CONNECT_HTTP_STATUS[[code]],
    headers = c(list("Content-Type" = "application/json"), headers),
    body = as.character(body)
  )
}
