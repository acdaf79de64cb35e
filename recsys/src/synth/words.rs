//! Vocabulary of the synthetic catalogue: a category tree whose leaves list main products and
//! their accessories (with a typical price), and words for brands, titles and reviews.

/// (subcategory, main products, accessories); a product is (noun, typical price in dollars).
pub type Leaf = (
    &'static str,
    &'static [(&'static str, f64)],
    &'static [(&'static str, f64)],
);

/// (top category, leaves).
pub const TREE: &[(&str, &[Leaf])] = &[
    (
        "Musical Instruments",
        &[
            (
                "Guitars",
                &[
                    ("Acoustic Guitar", 260.0),
                    ("Electric Guitar", 420.0),
                    ("Bass Guitar", 380.0),
                ],
                &[
                    ("Guitar Strings", 9.0),
                    ("Guitar Picks", 5.0),
                    ("Capo", 14.0),
                    ("Guitar Strap", 18.0),
                ],
            ),
            (
                "Keyboards",
                &[
                    ("Digital Piano", 520.0),
                    ("Synthesizer", 640.0),
                    ("MIDI Keyboard", 140.0),
                ],
                &[
                    ("Sustain Pedal", 22.0),
                    ("Keyboard Stand", 35.0),
                    ("Piano Bench", 60.0),
                ],
            ),
            (
                "Drums",
                &[("Drum Kit", 480.0), ("Snare Drum", 190.0), ("Cajon", 110.0)],
                &[
                    ("Drumsticks", 11.0),
                    ("Drum Throne", 55.0),
                    ("Practice Pad", 25.0),
                ],
            ),
            (
                "Studio Recording",
                &[
                    ("Audio Interface", 160.0),
                    ("Condenser Microphone", 120.0),
                    ("Studio Monitors", 300.0),
                ],
                &[
                    ("XLR Cable", 15.0),
                    ("Pop Filter", 12.0),
                    ("Mic Stand", 28.0),
                ],
            ),
        ],
    ),
    (
        "Beauty",
        &[
            (
                "Skin Care",
                &[
                    ("Face Serum", 32.0),
                    ("Moisturizer", 26.0),
                    ("Facial Cleanser", 15.0),
                ],
                &[
                    ("Cotton Pads", 5.0),
                    ("Facial Toner", 14.0),
                    ("Jade Roller", 18.0),
                ],
            ),
            (
                "Hair Care",
                &[
                    ("Hair Dryer", 70.0),
                    ("Hair Straightener", 60.0),
                    ("Curling Wand", 45.0),
                ],
                &[
                    ("Heat Protectant Spray", 12.0),
                    ("Hair Clips", 7.0),
                    ("Detangling Brush", 10.0),
                ],
            ),
            (
                "Makeup",
                &[
                    ("Foundation", 30.0),
                    ("Eyeshadow Palette", 38.0),
                    ("Lipstick", 18.0),
                ],
                &[
                    ("Makeup Brushes", 22.0),
                    ("Makeup Sponge", 8.0),
                    ("Makeup Remover", 11.0),
                ],
            ),
            (
                "Fragrance",
                &[
                    ("Eau de Parfum", 85.0),
                    ("Body Mist", 20.0),
                    ("Cologne", 70.0),
                ],
                &[("Travel Atomizer", 9.0), ("Scented Body Lotion", 16.0)],
            ),
        ],
    ),
    (
        "Sports & Outdoors",
        &[
            (
                "Camping",
                &[
                    ("Tent", 180.0),
                    ("Sleeping Bag", 90.0),
                    ("Hiking Backpack", 120.0),
                ],
                &[
                    ("Tent Stakes", 12.0),
                    ("Headlamp", 24.0),
                    ("Camping Lantern", 30.0),
                ],
            ),
            (
                "Cycling",
                &[
                    ("Road Bike", 900.0),
                    ("Mountain Bike", 750.0),
                    ("Bike Helmet", 60.0),
                ],
                &[
                    ("Bike Lights", 28.0),
                    ("Bottle Cage", 10.0),
                    ("Bike Pump", 32.0),
                ],
            ),
            (
                "Fitness",
                &[
                    ("Yoga Mat", 35.0),
                    ("Dumbbell Set", 120.0),
                    ("Exercise Bike", 420.0),
                ],
                &[
                    ("Resistance Bands", 18.0),
                    ("Yoga Blocks", 16.0),
                    ("Workout Gloves", 15.0),
                ],
            ),
            (
                "Running",
                &[("Running Shoes", 120.0), ("GPS Running Watch", 220.0)],
                &[
                    ("Running Socks", 14.0),
                    ("Phone Armband", 13.0),
                    ("Hydration Belt", 25.0),
                ],
            ),
        ],
    ),
    (
        "Electronics",
        &[
            (
                "Headphones",
                &[
                    ("Wireless Headphones", 180.0),
                    ("Noise Cancelling Earbuds", 140.0),
                    ("Studio Headphones", 110.0),
                ],
                &[
                    ("Headphone Case", 16.0),
                    ("Replacement Ear Tips", 9.0),
                    ("Headphone Stand", 20.0),
                ],
            ),
            (
                "Cameras",
                &[
                    ("Mirrorless Camera", 850.0),
                    ("Action Camera", 300.0),
                    ("Instant Camera", 90.0),
                ],
                &[
                    ("Memory Card", 20.0),
                    ("Camera Bag", 45.0),
                    ("Tripod", 40.0),
                ],
            ),
            (
                "Computers",
                &[("Laptop", 900.0), ("Monitor", 260.0), ("Tablet", 380.0)],
                &[
                    ("Laptop Sleeve", 22.0),
                    ("USB-C Hub", 35.0),
                    ("Wireless Mouse", 25.0),
                ],
            ),
            (
                "Smart Home",
                &[
                    ("Smart Speaker", 90.0),
                    ("Video Doorbell", 150.0),
                    ("Smart Thermostat", 180.0),
                ],
                &[
                    ("Smart Plug", 15.0),
                    ("Wall Mount", 14.0),
                    ("Motion Sensor", 25.0),
                ],
            ),
        ],
    ),
    (
        "Home & Kitchen",
        &[
            (
                "Coffee",
                &[
                    ("Espresso Machine", 320.0),
                    ("Coffee Grinder", 90.0),
                    ("French Press", 30.0),
                ],
                &[
                    ("Paper Coffee Filters", 6.0),
                    ("Milk Frother", 20.0),
                    ("Descaling Solution", 12.0),
                ],
            ),
            (
                "Cookware",
                &[
                    ("Frying Pan", 40.0),
                    ("Dutch Oven", 95.0),
                    ("Saucepan Set", 120.0),
                ],
                &[
                    ("Silicone Spatula", 9.0),
                    ("Pan Protectors", 12.0),
                    ("Pot Holders", 10.0),
                ],
            ),
            (
                "Bedding",
                &[
                    ("Duvet", 110.0),
                    ("Memory Foam Pillow", 45.0),
                    ("Sheet Set", 70.0),
                ],
                &[("Pillowcases", 18.0), ("Mattress Protector", 35.0)],
            ),
            (
                "Cleaning",
                &[
                    ("Vacuum Cleaner", 220.0),
                    ("Steam Mop", 90.0),
                    ("Robot Vacuum", 300.0),
                ],
                &[
                    ("Vacuum Bags", 14.0),
                    ("Mop Pads", 16.0),
                    ("Replacement Filter", 18.0),
                ],
            ),
        ],
    ),
    (
        "Toys & Games",
        &[
            (
                "Building Toys",
                &[
                    ("Building Blocks Set", 60.0),
                    ("Marble Run", 45.0),
                    ("Magnetic Tiles", 50.0),
                ],
                &[("Baseplate", 12.0), ("Toy Storage Bin", 20.0)],
            ),
            (
                "Board Games",
                &[
                    ("Strategy Board Game", 45.0),
                    ("Party Game", 25.0),
                    ("Cooperative Board Game", 40.0),
                ],
                &[
                    ("Card Sleeves", 8.0),
                    ("Expansion Pack", 22.0),
                    ("Dice Set", 10.0),
                ],
            ),
            (
                "Puzzles",
                &[("Jigsaw Puzzle", 20.0), ("3D Puzzle", 30.0)],
                &[
                    ("Puzzle Mat", 25.0),
                    ("Puzzle Glue", 8.0),
                    ("Puzzle Sorting Trays", 15.0),
                ],
            ),
            (
                "Outdoor Play",
                &[
                    ("Kick Scooter", 70.0),
                    ("Trampoline", 260.0),
                    ("Water Blaster", 25.0),
                ],
                &[("Knee Pads", 15.0), ("Safety Net", 60.0)],
            ),
        ],
    ),
    (
        "Pet Supplies",
        &[
            (
                "Dogs",
                &[
                    ("Dog Bed", 55.0),
                    ("Dog Crate", 80.0),
                    ("Automatic Ball Launcher", 110.0),
                ],
                &[("Dog Leash", 15.0), ("Chew Toy", 9.0), ("Dog Treats", 12.0)],
            ),
            (
                "Cats",
                &[
                    ("Cat Tree", 90.0),
                    ("Self-Cleaning Litter Box", 240.0),
                    ("Cat Carrier", 40.0),
                ],
                &[
                    ("Cat Litter", 18.0),
                    ("Scratching Pad", 12.0),
                    ("Catnip Toys", 8.0),
                ],
            ),
            (
                "Aquarium",
                &[("Aquarium Tank", 130.0), ("Aquarium Filter", 45.0)],
                &[
                    ("Water Conditioner", 9.0),
                    ("Fish Food", 7.0),
                    ("Aquarium Heater", 25.0),
                ],
            ),
            (
                "Birds",
                &[("Bird Cage", 95.0), ("Bird Bath", 40.0)],
                &[("Bird Perch", 10.0), ("Seed Mix", 14.0)],
            ),
        ],
    ),
    (
        "Office Products",
        &[
            (
                "Writing",
                &[
                    ("Fountain Pen", 45.0),
                    ("Gel Pen Set", 14.0),
                    ("Mechanical Pencil", 12.0),
                ],
                &[
                    ("Ink Cartridges", 9.0),
                    ("Pen Case", 15.0),
                    ("Pencil Leads", 5.0),
                ],
            ),
            (
                "Paper",
                &[
                    ("Dotted Notebook", 18.0),
                    ("Weekly Planner", 22.0),
                    ("Sketchbook", 16.0),
                ],
                &[
                    ("Sticky Notes", 6.0),
                    ("Bookmarks", 5.0),
                    ("Washi Tape", 8.0),
                ],
            ),
            (
                "Desk",
                &[
                    ("Standing Desk", 380.0),
                    ("Office Chair", 240.0),
                    ("Desk Lamp", 45.0),
                ],
                &[
                    ("Desk Mat", 20.0),
                    ("Cable Tray", 18.0),
                    ("Monitor Riser", 30.0),
                ],
            ),
            (
                "Printing",
                &[
                    ("Laser Printer", 220.0),
                    ("Label Maker", 45.0),
                    ("Photo Printer", 160.0),
                ],
                &[
                    ("Toner Cartridge", 60.0),
                    ("Label Tape", 14.0),
                    ("Photo Paper", 15.0),
                ],
            ),
        ],
    ),
];

/// Syllables for brand names (deterministic combinations).
pub const BRAND_HEADS: &[&str] = &[
    "Val", "Bris", "Nor", "Kel", "Ama", "Zen", "Tor", "Lum", "Ori", "Cal", "Vex", "Sol", "Mar",
    "Fen", "Quin", "Rho", "Dal", "Ever", "Pax", "Tem",
];
pub const BRAND_TAILS: &[&str] = &[
    "tora", "ko", "dix", "vane", "ra", "ith", "ova", "mark", "ex", "wood", "lyn", "stone", "io",
    "berg", "ton", "ique",
];

/// Price levels of brands: (name, multiplier of the typical price).
pub const PRICE_LEVELS: &[(&str, f64)] = &[("budget", 0.6), ("mid-range", 1.0), ("premium", 1.7)];

pub const ADJECTIVES: &[&str] = &[
    "Compact",
    "Pro",
    "Classic",
    "Ultra",
    "Essential",
    "Deluxe",
    "Lightweight",
    "Heritage",
    "Travel",
    "Smart",
    "Vintage",
    "Signature",
    "Everyday",
    "Advanced",
    "Mini",
    "Elite",
];

pub const VARIANTS: &[&str] = &[
    "Black",
    "White",
    "Blue",
    "Red",
    "Green",
    "Grey",
    "2-Pack",
    "3-Pack",
    "Large",
    "Small",
    "Gen 2",
    "Mk II",
    "Limited Edition",
    "XL",
];

/// Description phrases keyed by price level.
pub const LEVEL_PHRASES: &[&str] = &[
    "Good value for everyday use.",
    "Solid build at a fair price.",
    "Premium materials and a refined finish.",
];

pub const FEATURES: &[&str] = &[
    "Easy to set up out of the box.",
    "Backed by a two-year warranty.",
    "Designed for beginners and experienced users alike.",
    "Built to last with durable materials.",
    "Fits neatly into small spaces.",
    "Tested for reliable daily performance.",
];

pub const REVIEW_GOOD: &[&str] = &[
    "Exactly what I needed.",
    "Works great, would buy again.",
    "Quality is better than expected.",
    "Very happy with this purchase.",
    "Does the job perfectly.",
];
pub const REVIEW_MEH: &[&str] = &[
    "It's okay for the price.",
    "Does what it says, nothing special.",
    "Decent, but the finish could be better.",
];
pub const REVIEW_BAD: &[&str] = &[
    "Not worth the money.",
    "Stopped working after a few weeks.",
    "Cheaper than it looks, disappointed.",
];
pub const SUMMARY_GOOD: &[&str] = &["Five stars", "Love it", "Great value", "Highly recommend"];
pub const SUMMARY_MEH: &[&str] = &["Okay", "Average", "It works"];
pub const SUMMARY_BAD: &[&str] = &["Disappointed", "Would not buy again", "Poor quality"];
