// main_tflm.cc - tinyclap zero-shot audio classification with TensorFlow Lite Micro.
//
// Streaming loop, per window of TC_WINDOW_SAMPLES int16 PCM samples:
//   log-mel (tc_logmel.c, frame by frame from the int16 samples, straight into
//   the int8 input tensor; no float copy of the window)
//   -> "features" model -> pooled vector, accumulated over windows
// and when the caller asks for a label:
//   mean pooled vector -> "head" model -> embedding -> int8 scores against the
//   prompt bank (tc_classify.c) -> label.
// With a single "embed" model (log-mel -> embedding) the embeddings of the
// windows are averaged instead.
//
// Everything comes from the generated tinyclap_model.h / tinyclap_model.c
// (tinyclap.export.mcu.write_c_model) and tc_logmel_config.h. The C API is in
// tc_app.h. Build with -DTC_HOST_MAIN for a host program that classifies a raw
// int16 PCM file (Makefile target `tflm`). No dynamic allocation: the arenas
// and interpreters are static.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#include "tc_app.h"
#include "tc_classify.h"
#include "tc_logmel.h"
#include "tinyclap_model.h"

// Recent TFLM releases moved the interpreter from namespace tflite to
// tflite::micro; look the names up in both so this file builds against either.
namespace tflite {
namespace micro {}
}  // namespace tflite
namespace tfl {
using namespace tflite;
using namespace tflite::micro;
}  // namespace tfl

// ---------------------------------------------------------------- consistency

#if TC_MODEL_SAMPLE_RATE != TC_LOGMEL_SAMPLE_RATE || TC_MODEL_N_FFT != TC_LOGMEL_N_FFT || \
    TC_MODEL_WIN_LENGTH != TC_LOGMEL_WIN_LENGTH || TC_MODEL_HOP != TC_LOGMEL_HOP ||      \
    TC_MODEL_N_MELS != TC_LOGMEL_N_MELS
#error "tinyclap_model.h and tc_logmel_config.h were generated for different front ends"
#endif
static_assert(TC_MODEL_FMIN == TC_LOGMEL_FMIN && TC_MODEL_FMAX == TC_LOGMEL_FMAX,
              "tinyclap_model.h and tc_logmel_config.h disagree on fmin/fmax");
static_assert(TC_FRAMES_PER_WINDOW <= TC_WINDOW_SAMPLES / TC_LOGMEL_HOP + 1,
              "a window has fewer frames than the model expects");

#if defined(TC_HAS_EMBED_MODEL)
#define TC_SPLIT 0
#elif defined(TC_HAS_FEATURES_MODEL) && defined(TC_HAS_HEAD_MODEL)
#define TC_SPLIT 1
#else
#error "tinyclap_model.h must hold an 'embed' model or a 'features' + 'head' pair"
#endif

// Arena sizes: the export report's figure plus a margin (the report measures
// on a 64-bit host; a 32-bit MCU usually needs a little less), or a default
// to start from (print tc_app_arena_used() and shrink it).
#ifndef TC_ARENA_MARGIN
#define TC_ARENA_MARGIN 4096
#endif
#ifndef TC_DEFAULT_ARENA_BYTES
#define TC_DEFAULT_ARENA_BYTES (320 * 1024)
#endif
#if !TC_SPLIT && defined(TC_EMBED_ARENA_BYTES)
#define TC_ARENA0 (TC_EMBED_ARENA_BYTES + TC_ARENA_MARGIN)
#elif TC_SPLIT && defined(TC_FEATURES_ARENA_BYTES)
#define TC_ARENA0 (TC_FEATURES_ARENA_BYTES + TC_ARENA_MARGIN)
#else
#define TC_ARENA0 TC_DEFAULT_ARENA_BYTES
#endif
#if TC_SPLIT && defined(TC_HEAD_ARENA_BYTES)
#define TC_ARENA1 (TC_HEAD_ARENA_BYTES + TC_ARENA_MARGIN)
#elif TC_SPLIT
#define TC_ARENA1 (64 * 1024)
#endif

// Largest pooled vector (features output) the accumulator holds.
#ifndef TC_POOLED_MAX
#define TC_POOLED_MAX 2048
#endif

namespace {

// ---------------------------------------------------------------- op resolver

// The builtin ops an int8 PhiNet student and its projection head lower to
// (convolutions, SE blocks, LayerNorm decomposed by the converter into
// MEAN/SQUARED_DIFFERENCE/RSQRT/..., L2 normalisation). Each registration
// links its kernel: drop the ones your .tflite does not use to save flash.
// TFLM has no GELU kernel: deployable heads use ReLU (see docs/mcu.md).
constexpr int kNumOps = 32;
using Resolver = tfl::MicroMutableOpResolver<kNumOps>;

TfLiteStatus RegisterOps(Resolver& r) {
  TF_LITE_ENSURE_STATUS(r.AddConv2D());
  TF_LITE_ENSURE_STATUS(r.AddDepthwiseConv2D());
  TF_LITE_ENSURE_STATUS(r.AddFullyConnected());
  TF_LITE_ENSURE_STATUS(r.AddBatchMatMul());
  TF_LITE_ENSURE_STATUS(r.AddAdd());
  TF_LITE_ENSURE_STATUS(r.AddSub());
  TF_LITE_ENSURE_STATUS(r.AddMul());
  TF_LITE_ENSURE_STATUS(r.AddDiv());
  TF_LITE_ENSURE_STATUS(r.AddMean());
  TF_LITE_ENSURE_STATUS(r.AddSum());
  TF_LITE_ENSURE_STATUS(r.AddAveragePool2D());
  TF_LITE_ENSURE_STATUS(r.AddMaxPool2D());
  TF_LITE_ENSURE_STATUS(r.AddRelu());
  TF_LITE_ENSURE_STATUS(r.AddRelu6());
  TF_LITE_ENSURE_STATUS(r.AddHardSwish());
  TF_LITE_ENSURE_STATUS(r.AddLogistic());
  TF_LITE_ENSURE_STATUS(r.AddPad());
  TF_LITE_ENSURE_STATUS(r.AddPadV2());
  TF_LITE_ENSURE_STATUS(r.AddReshape());
  TF_LITE_ENSURE_STATUS(r.AddTranspose());
  TF_LITE_ENSURE_STATUS(r.AddConcatenation());
  TF_LITE_ENSURE_STATUS(r.AddStridedSlice());
  TF_LITE_ENSURE_STATUS(r.AddQuantize());
  TF_LITE_ENSURE_STATUS(r.AddDequantize());
  TF_LITE_ENSURE_STATUS(r.AddRsqrt());
  TF_LITE_ENSURE_STATUS(r.AddSqrt());
  TF_LITE_ENSURE_STATUS(r.AddSquaredDifference());
  TF_LITE_ENSURE_STATUS(r.AddSquare());
  TF_LITE_ENSURE_STATUS(r.AddL2Normalization());
  TF_LITE_ENSURE_STATUS(r.AddMaximum());
  TF_LITE_ENSURE_STATUS(r.AddMinimum());
  TF_LITE_ENSURE_STATUS(r.AddAbs());  // torch's L2 normalisation lowers to ABS + SUM + ...
  return kTfLiteOk;
}

// ---------------------------------------------------------------- state

alignas(16) uint8_t g_arena0[TC_ARENA0];
#if TC_SPLIT
alignas(16) uint8_t g_arena1[TC_ARENA1];
#endif

Resolver g_resolver;
tfl::MicroInterpreter* g_net0 = nullptr;  // embed, or features
tfl::MicroInterpreter* g_net1 = nullptr;  // head (split only)
// Interpreters live in static storage, built by placement new in tc_app_init
// (no heap, and no static-initialisation-order or guard-variable surprises).
alignas(tfl::MicroInterpreter) unsigned char g_net0_storage[sizeof(tfl::MicroInterpreter)];
#if TC_SPLIT
alignas(tfl::MicroInterpreter) unsigned char g_net1_storage[sizeof(tfl::MicroInterpreter)];
#endif

tc_logmel_t g_logmel;
float g_acc[TC_POOLED_MAX];  // sum over windows of the features (or embed) output
size_t g_acc_len = 0;
int g_windows = 0;

size_t Elements(const TfLiteTensor* t) {
  size_t n = 1;
  for (int i = 0; i < t->dims->size; ++i) n *= static_cast<size_t>(t->dims->data[i]);
  return n;
}

bool IsInt8OrFloat(const TfLiteTensor* t, const char* what) {
  if (t->type == kTfLiteInt8 || t->type == kTfLiteFloat32) return true;
  MicroPrintf("tinyclap: %s tensor must be int8 or float32 (type %d)", what,
              static_cast<int>(t->type));
  return false;
}

// The generated header and the .tflite must agree on quantisation: a stale
// header is the usual cause of a model that "runs but says nonsense".
bool CheckQuant(const TfLiteTensor* t, int int8, float scale, int zero_point, const char* what) {
  if ((t->type == kTfLiteInt8) != (int8 != 0)) {
    MicroPrintf("tinyclap: %s is %s in the model but %s in tinyclap_model.h", what,
                t->type == kTfLiteInt8 ? "int8" : "not int8", int8 ? "int8" : "float32");
    return false;
  }
  if (int8 && (std::fabs(t->params.scale - scale) > 1e-6f * scale ||
               t->params.zero_point != zero_point)) {
    MicroPrintf("tinyclap: %s quantisation differs from tinyclap_model.h (regenerate it)", what);
    return false;
  }
  return true;
}

tfl::MicroInterpreter* Build(const unsigned char* model_data, unsigned char* storage,
                                uint8_t* arena, size_t arena_bytes, const char* name) {
  const tfl::Model* model = tfl::GetModel(model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("tinyclap: %s model schema %d, TFLM expects %d", name,
                static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return nullptr;
  }
  auto* interp = new (storage) tfl::MicroInterpreter(model, g_resolver, arena, arena_bytes);
  if (interp->AllocateTensors() != kTfLiteOk) {
    MicroPrintf("tinyclap: %s model: AllocateTensors failed (arena %d bytes too small, or an op "
                "missing from RegisterOps)", name, static_cast<int>(arena_bytes));
    return nullptr;
  }
  if (!IsInt8OrFloat(interp->input(0), "input") || !IsInt8OrFloat(interp->output(0), "output")) {
    return nullptr;
  }
  return interp;
}

// Write one log-mel frame (already in dB) into row t of the model input.
void PutFrame(TfLiteTensor* in, size_t t, const float* mel) {
  for (size_t m = 0; m < TC_LOGMEL_N_MELS; ++m) {
    float x = mel[m];
#if TC_HAS_INPUT_AFFINE
    x = x * tc_input_affine_scale[m] + tc_input_affine_shift[m];  // folded BatchNorm
#endif
    const size_t i = t * TC_LOGMEL_N_MELS + m;
    if (in->type == kTfLiteInt8) {
      in->data.int8[i] = tc_quantize(x, in->params.scale, in->params.zero_point);
    } else {
      in->data.f[i] = x;
    }
  }
}

float Value(const TfLiteTensor* t, size_t i) {
  return t->type == kTfLiteInt8
             ? tc_dequantize(t->data.int8[i], t->params.scale, t->params.zero_point)
             : t->data.f[i];
}

}  // namespace

// ---------------------------------------------------------------- C API

extern "C" int tc_app_init(void) {
  if (RegisterOps(g_resolver) != kTfLiteOk) {
    MicroPrintf("tinyclap: op resolver full (raise kNumOps)");
    return -1;
  }
  tc_logmel_init(&g_logmel);
#if TC_SPLIT
  g_net0 = Build(tc_features_model, g_net0_storage, g_arena0, sizeof g_arena0, "features");
  g_net1 = Build(tc_head_model, g_net1_storage, g_arena1, sizeof g_arena1, "head");
  if (g_net0 == nullptr || g_net1 == nullptr) return -1;
  bool ok = true;
#if TC_FEATURES_INPUT_INT8
  ok &= CheckQuant(g_net0->input(0), 1, TC_FEATURES_INPUT_SCALE, TC_FEATURES_INPUT_ZERO_POINT, "features input");
#else
  ok &= CheckQuant(g_net0->input(0), 0, 0.0f, 0, "features input");
#endif
#if TC_HEAD_OUTPUT_INT8
  ok &= CheckQuant(g_net1->output(0), 1, TC_HEAD_OUTPUT_SCALE, TC_HEAD_OUTPUT_ZERO_POINT, "head output");
#else
  ok &= CheckQuant(g_net1->output(0), 0, 0.0f, 0, "head output");
#endif
  g_acc_len = Elements(g_net0->output(0));
  if (Elements(g_net1->input(0)) != g_acc_len) {
    MicroPrintf("tinyclap: features output (%d) != head input (%d)", static_cast<int>(g_acc_len),
                static_cast<int>(Elements(g_net1->input(0))));
    ok = false;
  }
  if (Elements(g_net1->output(0)) != TC_EMBED_DIM) ok = false;
#else
  g_net0 = Build(tc_embed_model, g_net0_storage, g_arena0, sizeof g_arena0, "embed");
  if (g_net0 == nullptr) return -1;
  bool ok = true;
#if TC_EMBED_INPUT_INT8
  ok &= CheckQuant(g_net0->input(0), 1, TC_EMBED_INPUT_SCALE, TC_EMBED_INPUT_ZERO_POINT, "embed input");
#else
  ok &= CheckQuant(g_net0->input(0), 0, 0.0f, 0, "embed input");
#endif
#if TC_EMBED_OUTPUT_INT8
  ok &= CheckQuant(g_net0->output(0), 1, TC_EMBED_OUTPUT_SCALE, TC_EMBED_OUTPUT_ZERO_POINT, "embed output");
#else
  ok &= CheckQuant(g_net0->output(0), 0, 0.0f, 0, "embed output");
#endif
  g_acc_len = Elements(g_net0->output(0));
  if (g_acc_len != TC_EMBED_DIM) ok = false;
#endif
  if (Elements(g_net0->input(0)) != static_cast<size_t>(TC_FRAMES_PER_WINDOW) * TC_LOGMEL_N_MELS) {
    MicroPrintf("tinyclap: model input has %d values, expected %d frames x %d mels",
                static_cast<int>(Elements(g_net0->input(0))), TC_FRAMES_PER_WINDOW, TC_LOGMEL_N_MELS);
    ok = false;
  }
  if (g_acc_len > TC_POOLED_MAX) {
    MicroPrintf("tinyclap: pooled vector of %d values: raise TC_POOLED_MAX", static_cast<int>(g_acc_len));
    ok = false;
  }
  if (!ok) {
    MicroPrintf("tinyclap: the model does not match tinyclap_model.h (dims: bank %d)", TC_EMBED_DIM);
    return -1;
  }
  tc_app_reset();
  return 0;
}

extern "C" void tc_app_reset(void) {
  std::memset(g_acc, 0, sizeof g_acc);
  g_windows = 0;
}

extern "C" int tc_app_push_window(const int16_t* window) {
  if (g_net0 == nullptr) return -1;
  TfLiteTensor* in = g_net0->input(0);
  float mel[TC_LOGMEL_N_MELS];
  for (size_t t = 0; t < TC_FRAMES_PER_WINDOW; ++t) {
    if (tc_logmel_buffer_frame_i16(&g_logmel, window, TC_WINDOW_SAMPLES, t, mel) != 0) return -1;
    PutFrame(in, t, mel);
  }
  if (g_net0->Invoke() != kTfLiteOk) {
    MicroPrintf("tinyclap: Invoke failed");
    return -1;
  }
  const TfLiteTensor* out = g_net0->output(0);
  for (size_t i = 0; i < g_acc_len; ++i) g_acc[i] += Value(out, i);
  ++g_windows;
  return 0;
}

extern "C" int tc_app_finish(int* top, size_t k, float* cosine) {
  if (g_net0 == nullptr || g_windows == 0) return -1;
  int8_t emb[TC_EMBED_DIM];
  int32_t zero_point = 0;
  float emb_scale = 0.0f;
  const TfLiteTensor* out = g_net0->output(0);
#if TC_SPLIT
  // Mean pooled vector -> head input.
  TfLiteTensor* hin = g_net1->input(0);
  for (size_t i = 0; i < g_acc_len; ++i) {
    const float mean = g_acc[i] / static_cast<float>(g_windows);
    if (hin->type == kTfLiteInt8) {
      hin->data.int8[i] = tc_quantize(mean, hin->params.scale, hin->params.zero_point);
    } else {
      hin->data.f[i] = mean;
    }
  }
  if (g_net1->Invoke() != kTfLiteOk) {
    MicroPrintf("tinyclap: head Invoke failed");
    return -1;
  }
  out = g_net1->output(0);
  const bool direct = out->type == kTfLiteInt8;
#else
  // One window: classify the model's own int8 output, exactly as the Python
  // int8 reference does. Several: the mean embedding, re-quantised.
  const bool direct = out->type == kTfLiteInt8 && g_windows == 1;
#endif
  if (direct) {
    std::memcpy(emb, out->data.int8, TC_EMBED_DIM);
    zero_point = out->params.zero_point;
    emb_scale = out->params.scale;
  } else {
    float mean[TC_EMBED_DIM];
    for (size_t i = 0; i < TC_EMBED_DIM; ++i) {
#if TC_SPLIT
      mean[i] = Value(out, i);
#else
      mean[i] = g_acc[i] / static_cast<float>(g_windows);
#endif
    }
    emb_scale = tc_quantize_embedding(mean, TC_EMBED_DIM, emb);
  }
  int32_t scores[TC_N_CLASSES];
  const int best = tc_classify(emb, zero_point, tc_bank, TC_N_CLASSES, TC_EMBED_DIM, scores);
  if (top != nullptr && k > 0) {
    const size_t n = tc_topk(scores, TC_N_CLASSES, k, top);
    for (size_t j = 0; cosine != nullptr && j < n; ++j) {
      cosine[j] = tc_score_to_cosine(scores[top[j]], emb_scale, TC_BANK_SCALE);
    }
  }
  tc_app_reset();
  return best;
}

extern "C" size_t tc_app_arena_used(int which) {
  if (which == 0 && g_net0 != nullptr) return g_net0->arena_used_bytes();
  if (which == 1 && g_net1 != nullptr) return g_net1->arena_used_bytes();
  return 0;
}

// ---------------------------------------------------------------- host demo

#ifdef TC_HOST_MAIN
#include <cstdio>
#include <cstdlib>

// Usage: main_tflm AUDIO.s16  (mono int16 PCM, native byte order, at
// TC_MODEL_SAMPLE_RATE, e.g. `sox in.wav -r 44100 -c 1 -e signed -b 16 -t raw
// AUDIO.s16`). Cuts the audio as the device does and as
// tinyclap.export.streaming.cut_windows does: windows back to back from the
// start, a tail shorter than a window dropped, audio shorter than one window
// repeated to fill it. Prints the top 3.
int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s AUDIO.s16\n", argv[0]);
    return 1;
  }
  std::FILE* f = std::fopen(argv[1], "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 2;
  }
  std::fseek(f, 0, SEEK_END);
  const long bytes = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  const size_t n = bytes > 0 ? static_cast<size_t>(bytes) / sizeof(int16_t) : 0;
  int16_t* wave = static_cast<int16_t*>(std::malloc((n + 1) * sizeof(int16_t)));  // host only
  if (n == 0 || wave == nullptr || std::fread(wave, sizeof(int16_t), n, f) != n) {
    std::fprintf(stderr, "%s: no int16 samples\n", argv[1]);
    return 2;
  }
  std::fclose(f);
  if (tc_app_init() != 0) return 3;
  static int16_t window[TC_WINDOW_SAMPLES];  // as a device's DMA buffer
  const size_t count = n <= TC_WINDOW_SAMPLES ? 1 : n / TC_WINDOW_SAMPLES;
  for (size_t w = 0; w < count; ++w) {
    for (size_t i = 0; i < TC_WINDOW_SAMPLES; ++i) {
      window[i] = n <= TC_WINDOW_SAMPLES ? wave[i % n] : wave[w * TC_WINDOW_SAMPLES + i];
    }
    if (tc_app_push_window(window) != 0) return 4;
  }
  int top[3];
  float cos[3];
  const int best = tc_app_finish(top, 3, cos);
  if (best < 0) return 5;
  std::printf("label %d %s (%d windows)\n", best, tc_labels[best], static_cast<int>(count));
  for (int j = 0; j < 3 && j < TC_N_CLASSES; ++j) {
    std::printf("  %d %-24s cos %.4f\n", top[j], tc_labels[top[j]], static_cast<double>(cos[j]));
  }
  std::printf("arena used: %zu", tc_app_arena_used(0));
  if (TC_SPLIT) std::printf(" + %zu", tc_app_arena_used(1));
  std::printf(" bytes\n");
  std::free(wave);
  return 0;
}
#endif  // TC_HOST_MAIN
