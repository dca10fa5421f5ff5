package ai.clipper;

import java.util.List;

/**
 * A model a Clipper model container serves: a batch prediction function.
 *
 * <p>{@code predict} gets one batch of inputs and answers one string per input, in order (JSON when the
 * answer parses as JSON). The type of one input follows the model's input type: {@code double[]} for
 * doubles, {@code float[]} for floats, {@code int[]} for ints, {@code byte[]} for bytes, {@code String}
 * for strings (see {@link InputType#javaType()}).
 *
 * <p>What goes wrong stays with the batch: an exception makes every input of the batch an error, a list
 * of the wrong size likewise, and a {@code null} element makes that input alone an error. The server
 * keeps serving. Unless {@link ServeOptions.Builder#concurrency(int)} says otherwise, one batch runs at
 * a time, so a model need not be thread-safe. A model that is also {@link AutoCloseable} is closed when
 * the server stops.
 *
 * @param <I> the type of one input
 */
@FunctionalInterface
public interface Model<I> {
  List<String> predict(List<I> inputs) throws Exception;
}
