//! One JPEG decoder for the face-api.js scripts here: a file as an int32 RGB tensor (jpeg-js).
'use strict';
const fs = require('fs');
const jpeg = require('jpeg-js');

/** The JPEG at `file` as a [height, width, 3] int32 tensor of `tf`. */
function imageTensor(tf, file) {
  const img = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: true });
  const rgb = new Int32Array(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) {
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = img.data[i * 4 + c];
  }
  return tf.tensor3d(rgb, [img.height, img.width, 3], 'int32');
}

module.exports = { imageTensor };
