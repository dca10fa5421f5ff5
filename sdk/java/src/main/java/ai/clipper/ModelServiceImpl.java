package ai.clipper;

import clipper.common.v1.Data;
import clipper.model.v1.ModelServiceGrpc;
import clipper.model.v1.ModelServiceOuterClass.CheckReadinessRequest;
import clipper.model.v1.ModelServiceOuterClass.CheckReadinessResponse;
import clipper.model.v1.ModelServiceOuterClass.GetMetadataRequest;
import clipper.model.v1.ModelServiceOuterClass.GetMetadataResponse;
import clipper.model.v1.ModelServiceOuterClass.PredictRequest;
import clipper.model.v1.ModelServiceOuterClass.PredictResponse;
import clipper.model.v1.ModelServiceOuterClass.PredictStreamRequest;
import clipper.model.v1.ModelServiceOuterClass.PredictStreamResponse;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The clipper.model.v1.ModelService handlers. A batch runs while holding one of {@code concurrency}
 * model slots. Unary batches run on the model's own pool of {@code concurrency} threads, so gRPC's
 * threads (health checks among them) never wait for a model. A stream's batches run on that pool
 * too when concurrency is above 1, and complete in any order; at concurrency 1 they run in the
 * stream's own gRPC thread, one after the other, which saves a hand-off between threads per batch
 * (about 50 µs of a 220 µs round trip at batch 1, test/conformance/runtime-overhead.ts) and blocks
 * one gRPC thread per stream at most. A stream holds at most {@code maxOpenBatches} batches
 * received and unanswered: past that it stops reading (HTTP/2 flow control holds the caller's next
 * batches), so memory stays bounded whatever the caller does.
 */
final class ModelServiceImpl extends ModelServiceGrpc.ModelServiceImplBase {
  private static final Logger log = Logger.getLogger("ai.clipper");

  private final ServeOptions options;
  private final GetMetadataResponse metadata;
  private final AtomicReference<BatchPredictor> predictor = new AtomicReference<>();
  private final ExecutorService modelThreads;
  private final Semaphore queued;
  private final Semaphore slots;
  private final boolean streamsInline;
  private final Set<BatchStream> streams = ConcurrentHashMap.newKeySet();
  private volatile boolean draining;
  private volatile String notReadyReason = "the model is loading";

  ModelServiceImpl(ServeOptions options) {
    this.options = options;
    this.metadata = GetMetadataResponse.newBuilder()
        .setModelName(options.name())
        .setModelVersion(options.version())
        .setInputType(options.inputType().proto())
        .setRuntime("java " + System.getProperty("java.version"))
        .setMaxBatchSize(options.maxBatchSize())
        .build();
    AtomicInteger threads = new AtomicInteger();
    this.modelThreads = new ThreadPoolExecutor(options.concurrency(), options.concurrency(), 0, TimeUnit.MILLISECONDS,
        new LinkedBlockingQueue<>(), runnable -> {
          Thread t = new Thread(runnable, "clipper-model-" + threads.incrementAndGet());
          t.setDaemon(true);
          return t;
        });
    this.queued = new Semaphore(options.maxQueuedBatches());
    this.slots = new Semaphore(options.concurrency(), true);
    this.streamsInline = options.concurrency() == 1;
  }

  /** The model is loaded: batches run from now on. */
  void ready(BatchPredictor loaded) {
    predictor.set(loaded);
  }

  boolean isReady() {
    return predictor.get() != null && !draining;
  }

  /**
   * Stopping: batches already received run to their end and are answered; a stream ends once its
   * open batches are answered, and batches arriving meanwhile fail UNAVAILABLE (the router retries
   * them on another replica).
   */
  void drain() {
    draining = true;
    notReadyReason = "the model server is stopping";
    for (BatchStream stream : streams) stream.drain();
  }

  /** Stops the model's threads, waiting up to {@code millis} for running batches. */
  void shutdownModelThreads(long millis) throws InterruptedException {
    modelThreads.shutdown();
    if (!modelThreads.awaitTermination(millis, TimeUnit.MILLISECONDS)) modelThreads.shutdownNow();
  }

  @Override
  public void predict(PredictRequest request, StreamObserver<PredictResponse> responses) {
    ServerCallStreamObserver<PredictResponse> call = (ServerCallStreamObserver<PredictResponse>) responses;
    // With a handler set, answering a call the caller has given up on is a no-op instead of an exception.
    call.setOnCancelHandler(() -> {});
    BatchPredictor model = predictor.get();
    if (model == null) {
      call.onError(Status.UNAVAILABLE.withDescription(notReadyReason).asException());
      return;
    }
    Context context = Context.current();
    submit(() -> {
      // A caller gone, or its deadline passed, while the batch waited: nobody reads the answer.
      if (context.isCancelled()) return;
      try {
        List<Data.Output> outputs = model.predict(request.getInputs(), request.getBatchId());
        call.onNext(PredictResponse.newBuilder().addAllOutputs(outputs).build());
        call.onCompleted();
      } catch (StatusException e) {
        call.onError(e);
      }
    }, status -> call.onError(status.asException()));
  }

  @Override
  public StreamObserver<PredictStreamRequest> predictStream(StreamObserver<PredictStreamResponse> responses) {
    ServerCallStreamObserver<PredictStreamResponse> call = (ServerCallStreamObserver<PredictStreamResponse>) responses;
    BatchStream stream = new BatchStream(call);
    call.disableAutoRequest();
    call.setOnCancelHandler(stream::cancelled);
    streams.add(stream);
    if (draining) stream.drain();
    call.request(options.maxOpenBatches());
    return stream;
  }

  @Override
  public void getMetadata(GetMetadataRequest request, StreamObserver<GetMetadataResponse> responses) {
    responses.onNext(metadata);
    responses.onCompleted();
  }

  @Override
  public void checkReadiness(CheckReadinessRequest request, StreamObserver<CheckReadinessResponse> responses) {
    boolean ready = isReady();
    responses.onNext(CheckReadinessResponse.newBuilder().setReady(ready).setMessage(ready ? "" : notReadyReason).build());
    responses.onCompleted();
  }

  /** Queues a batch for the model's threads, or tells {@code refused} why it cannot wait. */
  private void submit(Runnable batch, Consumer<Status> refused) {
    if (!queued.tryAcquire()) {
      refused.accept(Status.RESOURCE_EXHAUSTED.withDescription(
          options.maxQueuedBatches() + " batches are waiting for the model, this server's limit"));
      return;
    }
    try {
      modelThreads.execute(() -> {
        try {
          inSlot(batch);
        } catch (RuntimeException e) {
          // Answering a call that has just ended, or a bug here: the model's threads go on.
          log.log(Level.FINE, "answering a batch failed", e);
        } finally {
          queued.release();
        }
      });
    } catch (RejectedExecutionException e) {
      queued.release();
      refused.accept(Status.UNAVAILABLE.withDescription("the model server is stopping"));
    }
  }

  private void inSlot(Runnable batch) {
    slots.acquireUninterruptibly();
    try {
      batch.run();
    } finally {
      slots.release();
    }
  }

  private static PredictStreamResponse batchFailure(long batchId, Status status) {
    return PredictStreamResponse.newBuilder()
        .setBatchId(batchId)
        .setErrorCode(status.getCode().value())
        .setErrorMessage(status.getDescription() == null ? status.getCode().name() : status.getDescription())
        .build();
  }

  /** One PredictStream: its open batches, answered by batch_id as they complete. */
  private final class BatchStream implements StreamObserver<PredictStreamRequest> {
    private final ServerCallStreamObserver<PredictStreamResponse> call;
    private int open;
    private boolean inputEnded;
    private boolean stopping;
    private boolean finished;
    private volatile boolean cancelled;

    BatchStream(ServerCallStreamObserver<PredictStreamResponse> call) {
      this.call = call;
    }

    @Override
    public void onNext(PredictStreamRequest request) {
      long batchId = request.getBatchId();
      synchronized (this) {
        if (finished) return;
        open++;
      }
      BatchPredictor model = predictor.get();
      if (model == null || draining) {
        answer(batchFailure(batchId, Status.UNAVAILABLE.withDescription(notReadyReason)));
        return;
      }
      Runnable batch = () -> {
        if (cancelled) {
          answer(null);
          return;
        }
        answer(run(model, request));
      };
      if (streamsInline) inSlot(batch);
      else submit(batch, status -> answer(batchFailure(batchId, status)));
    }

    private PredictStreamResponse run(BatchPredictor model, PredictStreamRequest request) {
      try {
        List<Data.Output> outputs = model.predict(request.getInputs(), request.getBatchId());
        return PredictStreamResponse.newBuilder().setBatchId(request.getBatchId()).addAllOutputs(outputs).build();
      } catch (StatusException e) {
        return batchFailure(request.getBatchId(), e.getStatus());
      } catch (RuntimeException e) {
        log.log(Level.WARNING, "batch " + request.getBatchId() + " failed", e);
        return batchFailure(request.getBatchId(), Status.UNKNOWN.withDescription(e.toString()));
      }
    }

    /** One batch is done: its answer (none when the stream was cancelled) goes out, and one more batch may come in. */
    private synchronized void answer(PredictStreamResponse response) {
      open--;
      if (finished || cancelled) return;
      if (response != null) {
        try {
          call.onNext(response);
        } catch (RuntimeException e) {
          // The call ended under us (the caller went away).
          cancelled = true;
        }
      }
      if (!stopping) call.request(1);
      finishIfDone();
    }

    private void finishIfDone() {
      if (finished || open > 0 || !(inputEnded || stopping)) return;
      finished = true;
      streams.remove(this);
      if (!cancelled) {
        try {
          call.onCompleted();
        } catch (RuntimeException e) {
          // Already closed by the caller.
        }
      }
    }

    synchronized void drain() {
      stopping = true;
      finishIfDone();
    }

    void cancelled() {
      cancelled = true;
      synchronized (this) {
        finished = true;
        streams.remove(this);
      }
    }

    @Override
    public void onError(Throwable t) {
      cancelled();
    }

    @Override
    public synchronized void onCompleted() {
      inputEnded = true;
      finishIfDone();
    }
  }
}
