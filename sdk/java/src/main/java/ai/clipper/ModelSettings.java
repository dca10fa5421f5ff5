package ai.clipper;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * How {@link ModelMain} serves a model class (what {@link ServeOptions} says for a server started from
 * code). Optional: without it a model runs one batch at a time and takes batches of any size.
 *
 * <pre>{@code
 * @ModelSettings(concurrency = 4)   // predict is thread-safe: up to 4 batches at once
 * public final class MyModel implements Model<double[]> { ... }
 * }</pre>
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
public @interface ModelSettings {
  /** Batches run at once (on as many threads); 1, the default, when predict is not thread-safe. */
  int concurrency() default 1;

  /** The largest batch the model accepts (reported in GetMetadata); 0, the default, means no limit. */
  int maxBatchSize() default 0;
}
