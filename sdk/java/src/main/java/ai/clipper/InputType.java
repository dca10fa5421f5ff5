package ai.clipper;

import clipper.common.v1.Data;
import java.util.Locale;

/** Clipper's input types: an application and every model linked to it share one. */
public enum InputType {
  /** Each input is an opaque byte string: {@code byte[]}. */
  BYTES("bytes", byte[].class, Data.InputType.INPUT_TYPE_BYTES),
  /** Each input is a vector of 32-bit signed integers: {@code int[]}. */
  INTS("ints", int[].class, Data.InputType.INPUT_TYPE_INTS),
  /** Each input is a vector of 32-bit floats: {@code float[]}. */
  FLOATS("floats", float[].class, Data.InputType.INPUT_TYPE_FLOATS),
  /** Each input is a vector of 64-bit floats: {@code double[]}. */
  DOUBLES("doubles", double[].class, Data.InputType.INPUT_TYPE_DOUBLES),
  /** Each input is one UTF-8 string: {@code String}. */
  STRINGS("strings", String.class, Data.InputType.INPUT_TYPE_STRINGS);

  private final String clipperName;
  private final Class<?> javaType;
  private final Data.InputType proto;

  InputType(String clipperName, Class<?> javaType, Data.InputType proto) {
    this.clipperName = clipperName;
    this.javaType = javaType;
    this.proto = proto;
  }

  /** The name Clipper uses for it (REST, the CLI, CLIPPER_INPUT_TYPE): "doubles", "strings", ... */
  public String clipperName() {
    return clipperName;
  }

  /** The Java type of one input, as a model's {@code predict} receives it. */
  public Class<?> javaType() {
    return javaType;
  }

  Data.InputType proto() {
    return proto;
  }

  /**
   * The input type of a name such as "doubles" (case does not matter; "integers" and "string" are
   * accepted as Clipper's other SDKs accept them).
   *
   * @throws IllegalArgumentException for any other name, naming the valid ones
   */
  public static InputType parse(String name) {
    String lower = name.trim().toLowerCase(Locale.ROOT);
    for (InputType type : values()) {
      if (type.clipperName.equals(lower)) return type;
    }
    if (lower.equals("integers")) return INTS;
    if (lower.equals("string")) return STRINGS;
    throw new IllegalArgumentException(
        "unknown input type \"" + name + "\": expected one of bytes, ints, floats, doubles, strings");
  }

  static String nameOf(Data.InputType proto) {
    for (InputType type : values()) {
      if (type.proto == proto) return type.clipperName;
    }
    return "unspecified";
  }

  @Override
  public String toString() {
    return clipperName;
  }
}
