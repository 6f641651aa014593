//! face-api.js's face detector (SSD MobileNet v1, its default options) on photos, as a reference
//! beside ferrite's detector (bench/collage.sh): one CSV row per face found.
//!
//! Usage (inside tools/teacher, after `npm ci`): node detect_faces.cjs PHOTO_OR_FOLDER... > faces.csv
//! Output: `image,x,y,w,h,score` in image pixels. JPEG only (jpeg-js decodes it).
'use strict';
const fs = require('fs');
const path = require('path');
const { imageTensor } = require('./image.cjs');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

function listImages(p, out) {
  if (fs.statSync(p).isDirectory()) {
    for (const e of fs.readdirSync(p).sort()) listImages(path.join(p, e), out);
  } else if (/\.jpe?g$/i.test(p)) {
    out.push(p);
  }
  return out;
}

async function main() {
  const inputs = process.argv.slice(2);
  if (inputs.length === 0) {
    console.error('usage: node detect_faces.cjs PHOTO_OR_FOLDER...');
    process.exit(2);
  }
  await tf.setBackend('wasm');
  await tf.ready();
  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  const options = new faceapi.SsdMobilenetv1Options();
  process.stdout.write('image,x,y,w,h,score\n');
  for (const file of inputs.flatMap((p) => listImages(p, []))) {
    const t = imageTensor(tf, file);
    const found = await faceapi.detectAllFaces(t, options);
    t.dispose();
    for (const d of found) {
      const b = d.box;
      process.stdout.write(`${file},${b.x.toFixed(1)},${b.y.toFixed(1)},${b.width.toFixed(1)},${b.height.toFixed(1)},${d.score.toFixed(4)}\n`);
    }
  }
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
