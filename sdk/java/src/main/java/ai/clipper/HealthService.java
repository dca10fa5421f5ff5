package ai.clipper;

import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.health.v1.HealthListRequest;
import io.grpc.health.v1.HealthListResponse;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * grpc.health.v1 for the names a model server serves ("" for the whole server): NOT_SERVING while
 * the model loads, SERVING once it is loaded, NOT_SERVING again when the server stops, at which
 * point open Watch calls get that status and end (so they do not hold the server open).
 */
final class HealthService extends HealthGrpc.HealthImplBase {
  private final List<String> services;
  private final Set<Watcher> watchers = ConcurrentHashMap.newKeySet();
  private volatile ServingStatus status = ServingStatus.NOT_SERVING;
  private volatile boolean stopped;

  HealthService(List<String> services) {
    this.services = List.copyOf(services);
  }

  ServingStatus status() {
    return status;
  }

  void setServing(boolean serving) {
    if (stopped) return;
    status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (Watcher w : watchers) w.send(status, false);
  }

  /** NOT_SERVING from now on; open Watch calls get it and end. */
  void stop() {
    stopped = true;
    status = ServingStatus.NOT_SERVING;
    for (Watcher w : watchers) w.send(status, true);
    watchers.clear();
  }

  @Override
  public void check(HealthCheckRequest request, StreamObserver<HealthCheckResponse> responses) {
    if (!services.contains(request.getService())) {
      responses.onError(Status.NOT_FOUND.withDescription("unknown service \"" + request.getService() + "\"").asException());
      return;
    }
    responses.onNext(HealthCheckResponse.newBuilder().setStatus(status).build());
    responses.onCompleted();
  }

  @Override
  public void list(HealthListRequest request, StreamObserver<HealthListResponse> responses) {
    HealthListResponse.Builder out = HealthListResponse.newBuilder();
    for (String service : services) out.putStatuses(service, HealthCheckResponse.newBuilder().setStatus(status).build());
    responses.onNext(out.build());
    responses.onCompleted();
  }

  @Override
  public void watch(HealthCheckRequest request, StreamObserver<HealthCheckResponse> responses) {
    ServerCallStreamObserver<HealthCheckResponse> call = (ServerCallStreamObserver<HealthCheckResponse>) responses;
    Watcher watcher = new Watcher(call, services.contains(request.getService()));
    if (stopped) {
      watcher.send(status, true);
      return;
    }
    watchers.add(watcher);
    call.setOnCancelHandler(() -> watchers.remove(watcher));
    watcher.send(status, false);
  }

  /** One Watch call; sends only changes, one at a time. */
  private static final class Watcher {
    final ServerCallStreamObserver<HealthCheckResponse> call;
    private final boolean known;
    private ServingStatus last;
    private boolean ended;

    Watcher(ServerCallStreamObserver<HealthCheckResponse> call, boolean known) {
      this.call = call;
      this.known = known;
    }

    synchronized void send(ServingStatus status, boolean end) {
      if (ended || call.isCancelled()) return;
      ServingStatus value = known ? status : ServingStatus.SERVICE_UNKNOWN;
      if (value != last) {
        last = value;
        call.onNext(HealthCheckResponse.newBuilder().setStatus(value).build());
      }
      if (end) {
        ended = true;
        call.onCompleted();
      }
    }
  }
}
