"""Reference CNN of the FER2013 tutorials in Keras (TensorFlow): training and inference speed.

Prints one JSON line: {"framework": "keras", "train_img_s": ..., "infer64_img_s": ..., "infer1_ms": ...}.
"""
import json, os, sys, time

threads = int(os.environ.get("BENCH_THREADS", "2"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
from tensorflow import keras
from tensorflow.keras import layers


def block(x, filters, k):
    x = layers.Conv2D(filters, k, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(2)(x)
    return layers.Dropout(0.25)(x)


def dense(x, units):
    x = layers.Dense(units)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(0.25)(x)


inp = keras.Input((48, 48, 1))
x = block(inp, 64, 3)
x = block(x, 128, 5)
x = block(x, 512, 3)
x = block(x, 512, 3)
x = layers.Flatten()(x)
x = dense(x, 256)
x = dense(x, 512)
out = layers.Dense(7, activation="softmax")(x)
model = keras.Model(inp, out)
assert model.count_params() == 4_478_727, model.count_params()
model.compile(optimizer=keras.optimizers.Adam(5e-4), loss="sparse_categorical_crossentropy")

steps, warm = int(sys.argv[1]) if len(sys.argv) > 1 else 30, 5
rng = np.random.default_rng(0)
x = rng.random((64, 48, 48, 1), dtype=np.float32)
y = rng.integers(0, 7, 64)
for _ in range(warm):
    model.train_on_batch(x, y)
t = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
train = steps * 64 / (time.perf_counter() - t)

f = tf.function(lambda a: model(a, training=False))
for _ in range(warm):
    f(x)
t = time.perf_counter()
for _ in range(steps):
    f(x).numpy()
infer64 = steps * 64 / (time.perf_counter() - t)

x1 = x[:1]
for _ in range(warm):
    f(x1)
times = []
for _ in range(steps * 5):
    t = time.perf_counter()
    f(x1).numpy()
    times.append(time.perf_counter() - t)
print(json.dumps({"framework": f"keras {keras.__version__} / tensorflow {tf.__version__}", "train_img_s": train,
                  "infer64_img_s": infer64, "infer1_ms": 1000 * float(np.median(times))}))
