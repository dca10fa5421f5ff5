# The contract's messages, read at load time from the .proto files that
# scripts/generate.sh copies from the repository's proto/ into inst/proto.
PROTO_FILES <- c(
  "clipper/common/v1/data.proto",
  "clipper/model/v1/model_service.proto",
  "grpc/health/v1/health.proto"
)

proto_dir <- function() {
  dir <- Sys.getenv("CLIPPER_PROTO_PATH", "")
  if (nzchar(dir)) return(dir)
  system.file("proto", package = "clippermodel", mustWork = TRUE)
}

.onLoad <- function(libname, pkgname) {
  RProtoBuf::readProtoFiles2(files = PROTO_FILES, protoPath = proto_dir())
}

message_type <- function(name) RProtoBuf::P(name)
