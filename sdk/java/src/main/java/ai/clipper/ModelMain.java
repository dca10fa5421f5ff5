package ai.clipper;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.util.Map;

/**
 * The entry point of a Java model replica, as the container-manager starts it:
 *
 * <pre>
 * java -cp clipper-model-sdk-0.1.0-all.jar:model.jar ai.clipper.ModelMain com.example.MyModel
 * </pre>
 *
 * <p>Configured by the replica's environment ({@link ServeOptions#fromEnv}); the class is a
 * {@link Model} with a public no-argument constructor, optionally annotated {@link ModelSettings}.
 * The server listens (health NOT_SERVING) while the constructor runs, so a model that takes long to
 * load is a live replica that is not ready yet, then SERVING. It stops on SIGTERM or SIGINT, letting
 * batches in flight finish, and exits 0.
 *
 * <p>Exit status: 2 for a wrong setting or a class that is not a usable model, 3 when the class or
 * one it needs is not on the class path, 1 when the model's constructor fails or the port cannot be
 * bound. Each failure ends with one line on stderr naming what to fix.
 */
public final class ModelMain {
  static final int EXIT_FAILED = 1;
  static final int EXIT_USAGE = 2;
  static final int EXIT_CLASSPATH = 3;

  private ModelMain() {}

  public static void main(String[] args) {
    configureLogging();
    int status = run(args, System.getenv());
    if (status != 0) System.exit(status);
  }

  /** Serves until a signal stops the server (which exits the process), or returns a failure's exit status. */
  static int run(String[] args, Map<String, String> env) {
    if (args.length != 1 || args[0].startsWith("-")) {
      System.err.println("usage: java -cp clipper-model-sdk-all.jar:<model jar> ai.clipper.ModelMain <model class>");
      System.err.println("  environment: CLIPPER_MODEL_PORT, CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION, CLIPPER_INPUT_TYPE,");
      System.err.println("  CLIPPER_MODEL_HOST, CLIPPER_METRICS_PORT, CLIPPER_MODEL_CONCURRENCY");
      return EXIT_USAGE;
    }
    String className = args[0];
    ServeOptions options;
    try {
      options = ServeOptions.fromEnv(env);
    } catch (IllegalArgumentException e) {
      System.err.println("ModelMain: " + e.getMessage());
      return EXIT_USAGE;
    }
    Class<?> modelClass;
    try {
      modelClass = Class.forName(className, false, Thread.currentThread().getContextClassLoader());
    } catch (ClassNotFoundException | LinkageError e) {
      System.err.println("ModelMain: class " + className + " is not on the class path (" + System.getProperty("java.class.path")
          + "): " + e + "; give the model's jar with -cp, and the class's full name");
      return EXIT_CLASSPATH;
    }
    Constructor<?> constructor;
    try {
      constructor = modelConstructor(modelClass);
      ModelTypes.check(modelClass, options.inputType());
    } catch (IllegalArgumentException e) {
      System.err.println("ModelMain: " + e.getMessage());
      return EXIT_USAGE;
    }
    ModelSettings settings = modelClass.getAnnotation(ModelSettings.class);
    boolean concurrencyFromEnv = !env.getOrDefault("CLIPPER_MODEL_CONCURRENCY", "").isBlank();
    if (settings != null) {
      ServeOptions.Builder b = options.toBuilder().maxBatchSize(settings.maxBatchSize());
      if (!concurrencyFromEnv) b.concurrency(settings.concurrency());
      options = b.build();
    }
    ModelServer server;
    try {
      server = ModelServer.startLoading(options);
    } catch (IOException | RuntimeException e) {
      System.err.println("ModelMain: " + e.getMessage());
      return EXIT_FAILED;
    }
    server.closeOnSignal();
    ModelServer.announce(server);
    Model<?> model;
    try {
      model = (Model<?>) constructor.newInstance();
    } catch (InvocationTargetException e) {
      Throwable cause = e.getCause();
      server.close();
      if (cause instanceof NoClassDefFoundError) {
        System.err.println("ModelMain: " + className + " needs a class that is not on the class path: " + cause.getMessage()
            + "; put the jars it depends on in the model's jar (a shaded jar) or on -cp");
        return EXIT_CLASSPATH;
      }
      cause.printStackTrace();
      System.err.println("ModelMain: " + className + "'s constructor failed: " + cause);
      return EXIT_FAILED;
    } catch (ReflectiveOperationException | LinkageError e) {
      server.close();
      System.err.println("ModelMain: cannot create " + className + ": " + e);
      return EXIT_FAILED;
    }
    server.ready(model);
    java.util.logging.Logger.getLogger("ai.clipper").info(className + " loaded: SERVING (concurrency " + options.concurrency() + ")");
    try {
      server.awaitTermination();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return 0;
  }

  private static Constructor<?> modelConstructor(Class<?> modelClass) {
    if (!Model.class.isAssignableFrom(modelClass)) {
      throw new IllegalArgumentException(modelClass.getName() + " does not implement ai.clipper.Model");
    }
    if (Modifier.isAbstract(modelClass.getModifiers())) {
      throw new IllegalArgumentException(modelClass.getName() + " is abstract: name a concrete class");
    }
    try {
      Constructor<?> constructor = modelClass.getConstructor();
      return constructor;
    } catch (NoSuchMethodException e) {
      throw new IllegalArgumentException(modelClass.getName() + " has no public no-argument constructor");
    }
  }

  /** One line per record on stderr, unless the JVM was given a logging configuration. */
  private static void configureLogging() {
    if (System.getProperty("java.util.logging.config.file") == null
        && System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
      System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT.%1$tL %4$s %3$s: %5$s%6$s%n");
    }
  }
}
