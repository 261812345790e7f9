/**
 * The demo's internet mall: a few articles and a file for sale, and a
 * campaign with a quiz, a survey and an advertisement that pay scrip.
 */
export const DEMO_CURRENCY = "KRW";
export const DEMO_CAMPAIGN = "welcome-campaign";

export const DEMO_QUIZ = {
  itemId: "quiz-hash",
  prompt: "Scripwire authenticates every payment with keyed hashes instead of what?",
  choices: ["public-key signatures", "passwords", "nothing"],
  answer: "public-key signatures",
};

export function demoSellerConfig(vendorId: string, vendorSecretHex: string, port: number) {
  return {
    vendorId,
    identity: { dnsName: "localhost", serverName: "Scripwire Demo Mall", port },
    vendorKeys: { "1": vendorSecretHex },
    offerLifetimeSeconds: 600,
    catalog: [
      {
        requestUrl: "/articles/why-hash-cash",
        title: "Why hash-based e-cash makes a 30-won article possible",
        price: "30",
        currency: DEMO_CURRENCY,
        methods: ["VIEW"],
        content:
          "<article><h1>Why hash-based e-cash</h1><p>A signature costs milliseconds; a keyed hash costs microseconds. " +
          "At a price of a few won, only the second leaves a margin.</p></article>",
      },
      {
        requestUrl: "/software/scrip-inspector.txt",
        title: "Scrip inspector (a small tool, delivered as a file)",
        price: "120",
        currency: DEMO_CURRENCY,
        methods: ["SAVE"],
        fileName: "scrip-inspector.txt",
        contentType: "text/plain",
        content: "scrip-inspector 1.0\nPrints the fields of a scrip and checks its expiry.\n",
      },
      {
        requestUrl: "/search/real-estate?district=gangnam",
        title: "Real-estate database search",
        price: "15",
        currency: DEMO_CURRENCY,
        methods: ["VIEW", "SAVE"],
        content: "3 listings found.",
      },
    ],
    campaigns: [
      {
        campaignId: DEMO_CAMPAIGN,
        currency: DEMO_CURRENCY,
        items: [
          { itemId: DEMO_QUIZ.itemId, kind: "QUIZ", prompt: DEMO_QUIZ.prompt, choices: DEMO_QUIZ.choices, answer: DEMO_QUIZ.answer, reward: "100" },
          { itemId: "survey-reading", kind: "SURVEY", prompt: "What would you read for 30 won?", reward: "40" },
          { itemId: "ad-spring-sale", kind: "AD", prompt: "Spring sale at the demo mall: everything 10% off.", reward: "20" },
        ],
      },
    ],
  };
}
