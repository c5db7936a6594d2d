// The original sample's BFF: Express with the AWS X-Ray SDK for Node.js. GET /api calls
// backend 1 and then, once it answered, backend 2, and answers both fields.
const AWSXRay = require('aws-xray-sdk');
AWSXRay.captureHTTPsGlobal(require('http'));
AWSXRay.capturePromise();
const axios = require('axios');
const express = require('express');

// Benchmark switch: local sampling rules instead of asking the daemon.
if (process.env.BENCH_SAMPLING_RULES) {
  AWSXRay.middleware.disableCentralizedSampling();
  AWSXRay.middleware.setSamplingRules(process.env.BENCH_SAMPLING_RULES);
}

const app = express();
app.use(AWSXRay.express.openSegment('BFF'));

app.get('/api', (req, res) => {
  const backend1 = process.env.BACKEND_1_URL || '';
  const backend2 = process.env.BACKEND_2_URL || '';
  axios.get(backend1)
    .then((result1) => {
      axios.get(backend2)
        .then((result2) => {
          res.json({ currentDate: result1.data.currentDate, currentTime: result2.data.currentTime });
        })
        .catch((err) => console.log(err));
    })
    .catch((err) => console.log(err));
});

app.get('/health', (req, res) => {
  res.json({ status: 'ok' });
});

app.use(AWSXRay.express.closeSegment());

const port = process.env.PORT || '80';
app.listen(port, () => console.log(`Running on http://0.0.0.0:${port}`));
