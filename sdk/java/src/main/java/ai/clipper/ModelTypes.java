package ai.clipper;

import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;

/** What a model class declares it takes ({@code Model<double[]>}, ...), checked against the input type at start. */
final class ModelTypes {
  private ModelTypes() {}

  /**
   * The class of one input as {@code modelClass} declares it, or {@code null} when it does not say
   * (a lambda, a raw type, a type variable).
   */
  static Class<?> declaredInput(Class<?> modelClass) {
    for (Class<?> c = modelClass; c != null && c != Object.class; c = c.getSuperclass()) {
      Class<?> found = fromInterfaces(c.getGenericInterfaces());
      if (found != null) return found;
      Class<?> fromSuper = fromType(c.getGenericSuperclass());
      if (fromSuper != null) return fromSuper;
    }
    return null;
  }

  /**
   * @throws IllegalArgumentException when the model declares inputs of another type than the
   *     input type gives it, naming both
   */
  static void check(Class<?> modelClass, InputType inputType) {
    Class<?> declared = declaredInput(modelClass);
    if (declared == null || declared.isAssignableFrom(inputType.javaType())) return;
    throw new IllegalArgumentException(modelClass.getName() + " is a Model<" + declared.getSimpleName()
        + ">, but the input type is " + inputType + ", whose inputs are " + inputType.javaType().getSimpleName()
        + " (bytes: byte[], ints: int[], floats: float[], doubles: double[], strings: String)");
  }

  private static Class<?> fromInterfaces(Type[] interfaces) {
    for (Type t : interfaces) {
      Class<?> found = fromType(t);
      if (found != null) return found;
    }
    return null;
  }

  private static Class<?> fromType(Type t) {
    if (t instanceof ParameterizedType) {
      ParameterizedType p = (ParameterizedType) t;
      if (p.getRawType() == Model.class) {
        Type arg = p.getActualTypeArguments()[0];
        return arg instanceof Class ? (Class<?>) arg : null;
      }
      if (p.getRawType() instanceof Class) return fromInterfaces(((Class<?>) p.getRawType()).getGenericInterfaces());
    } else if (t instanceof Class && ((Class<?>) t).isInterface()) {
      return fromInterfaces(((Class<?>) t).getGenericInterfaces());
    }
    return null;
  }
}
