//! Teacher probabilities for distillation: face-api.js's expression network on every face of a
//! FER2013 image folder, written as a CSV that `ferrite train --teacher FILE` reads.
//!
//! Usage (inside tools/teacher, after `npm ci` or `npm install`):
//!   node teacher.cjs ../../../shared/data/fer2013/train teacher-train.csv
//! Output: `file,angry,disgust,fear,happy,neutral,sad,surprise` (ferrite's class order, checked
//! against the header when read), `file` the face's path under the folder; written to a
//! temporary name and renamed at the end. The network sees the face as stored (gray, 48x48,
//! repeated in three channels), scaled by face-api to its 112x112 input.
'use strict';
const fs = require('fs');
const path = require('path');
const { imageTensor } = require('./image.cjs');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

// face-api's label -> ferrite's class (src/emotion.rs order).
const CLASSES = ['angry', 'disgust', 'fear', 'happy', 'neutral', 'sad', 'surprise'];
const FROM = { angry: 'angry', disgusted: 'disgust', fearful: 'fear', happy: 'happy', neutral: 'neutral', sad: 'sad', surprised: 'surprise' };
const BATCH = 64;

function listFaces(root) {
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.(jpe?g|png)$/i.test(e.name)) out.push(p);
    }
  };
  walk(root);
  return out;
}

async function main() {
  const [root, outFile] = process.argv.slice(2);
  if (!root || !outFile) {
    console.error('usage: node teacher.cjs IMAGE_FOLDER OUT.csv');
    process.exit(2);
  }
  await tf.setBackend('wasm');
  await tf.ready();
  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);
  const files = listFaces(root);
  if (files.length === 0) throw new Error(`${root}: no images`);
  const tmp = `${outFile}.tmp${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, `file,${CLASSES.join(',')}\n`);
  const t0 = Date.now();
  for (let start = 0; start < files.length; start += BATCH) {
    const batch = files.slice(start, start + BATCH);
    const tensors = batch.map((f) => {
      try {
        return imageTensor(tf, f);
      } catch (e) {
        throw new Error(`${f}: ${e.message}`);
      }
    });
    const preds = await faceapi.nets.faceExpressionNet.predictExpressions(tensors);
    tensors.forEach((t) => t.dispose());
    const list = Array.isArray(preds) ? preds : [preds];
    let text = '';
    list.forEach((p, i) => {
      const probs = new Array(CLASSES.length).fill(0);
      for (const [k, v] of Object.entries(FROM)) probs[CLASSES.indexOf(v)] = p[k];
      const rel = path.relative(root, batch[i]).split(path.sep).join('/');
      text += `${rel},${probs.map((x) => x.toFixed(6)).join(',')}\n`;
    });
    fs.writeSync(fd, text);
    if ((start / BATCH) % 50 === 0) console.error(`${start + batch.length}/${files.length} faces, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, outFile);
  console.error(`${files.length} faces -> ${outFile} in ${((Date.now() - t0) / 1000).toFixed(0)} s (tfjs ${tf.version_core}, backend ${tf.getBackend()}, face-api ${faceapi.version})`);
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
